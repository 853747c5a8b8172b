"""``alembert export --quantize auto`` on a tiny random BERT: it picks a variant and says why,
holds every variant to the PyTorch model's dev metric (a deliberately broken quantiser is
refused), and falls back to fp32 when every int8 variant breaks the bound. Nothing here
depends on the CPU: which variant wins is whatever this machine measures."""

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_export import make_tiny_model
from transformers import AutoTokenizer, BertForSequenceClassification

from alembert.cli.main import main
from alembert.errors import AlembertError
from alembert.export import auto
from alembert.export.onnx import export_onnx

DATA = Path(__file__).resolve().parents[2] / "shared/data/glue_data"


@pytest.fixture(autouse=True)
def _caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "alembert-cache"
    monkeypatch.setenv("ALEMBERT_CACHE", str(cache))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def own_dev(tiny, tmp_path_factory):
    """Real SST-2 sentences labelled with the tiny model's own PyTorch predictions: its dev accuracy
    is 1.0, so a graph that changes its predictions loses exactly what it changes."""
    with open(DATA / "SST-2" / "dev.tsv") as f:
        texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][:48]
    model = BertForSequenceClassification.from_pretrained(tiny).eval()
    enc = AutoTokenizer.from_pretrained(tiny)(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        preds = model(**enc).logits.argmax(-1).tolist()
    path = tmp_path_factory.mktemp("own") / "dev.tsv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["sentence", "label"])
        w.writerows(zip(texts, preds, strict=True))
    return path


def broken_int8(src: Path, dst: Path, calibration) -> dict:
    """A quantiser gone wrong: dynamic int8, then the logits negated (every prediction flips)."""
    auto.build_int8_dynamic(src, dst, calibration)
    model = onnx.load(dst)
    for node in model.graph.node:
        node.output[:] = ["logits_raw" if o == "logits" else o for o in node.output]
    model.graph.node.append(onnx.helper.make_node("Neg", ["logits_raw"], ["logits"]))
    onnx.save(model, dst)
    return {"quantization": "int8", "int8": "broken on purpose"}


@pytest.mark.cli
def test_auto_picks_a_variant_and_says_why(tiny, own_dev, tmp_path, capsys):
    out = tmp_path / "auto"
    assert main(["export", str(tiny), "--onnx", "--quantize", "--dev-file", str(own_dev), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "alembert_export.json").read_text())
    a = info["auto"]
    assert a["variant"] in auto.VARIANTS and info["variant"] == a["variant"]
    # the pick depends on this CPU's timings (on a tiny model int8 may lose to fp32): the line names it either way
    assert printed.count("\n") == 2 and printed.splitlines()[-1] == f"quantize auto: {a['reason']}"
    assert a["reason"].startswith(a["variant"]) and f"{a['variant']}:" in a["reason"]
    assert a["source_dev"] == pytest.approx(1.0) and a["metric"] == "accuracy"
    assert info["quantization"] == (None if a["variant"] == "fp32" else "int8")
    cands = a["candidates"]
    assert {"fp32", "int8-dynamic"} <= set(cands)
    # own dev file only: no training texts, so static int8 is skipped with its reason
    assert "no training texts" in cands["int8-static"]["refused"]
    chosen = cands[a["variant"]]
    assert "refused" not in chosen and chosen["seq_s_b32"] >= cands["fp32"]["seq_s_b32"]
    assert chosen["dev"] >= a["source_dev"] - auto.MAX_DROP
    assert info["machine"]["isa"] == a["cpu"]["isa"] and info["argmax_agreement"] > 0
    assert not (out / "variants").exists() and sorted(p.name for p in out.iterdir()) == info["files"]
    card = (out / "README.md").read_text()  # the model card: what is inside, why, and on what CPU
    assert a["reason"] in card and "| int8-dynamic |" in card and info["machine"]["cpu_model"] in card


@pytest.mark.export
def test_auto_refuses_a_broken_quantiser(tiny, own_dev, tmp_path, monkeypatch):
    monkeypatch.setitem(auto.VARIANTS, "int8-broken", auto.Variant(broken_int8))
    out = export_onnx(
        tiny,
        tmp_path / "auto",
        quantize="auto",
        data={"dev_file": own_dev},
        candidates=["fp32", "int8-dynamic", "int8-broken"],
    )
    a = json.loads((out / "alembert_export.json").read_text())["auto"]
    broken = a["candidates"]["int8-broken"]
    assert broken["dev"] < 0.5 and "below the PyTorch source's 1.0000" in broken["refused"]
    assert a["variant"] != "int8-broken"


@pytest.mark.export
def test_auto_falls_back_to_fp32_when_int8_breaks_the_bound(tiny, own_dev, tmp_path, monkeypatch):
    monkeypatch.setitem(auto.VARIANTS, "int8-broken", auto.Variant(broken_int8))
    out = export_onnx(tiny, tmp_path / "auto", quantize="auto", data={"dev_file": own_dev}, candidates=["int8-broken"])
    info = json.loads((out / "alembert_export.json").read_text())
    assert info["variant"] == "fp32" and info["quantization"] is None and info["max_abs_diff_vs_torch"] < 1e-4
    assert "refused" in info["auto"]["candidates"]["int8-broken"]
    assert info["auto"]["reason"].startswith("fp32 (every int8 variant refused; int8-broken: dev accuracy 0.")


@pytest.mark.export
def test_auto_with_a_glue_task_calibrates_static_int8(tiny, tmp_path):
    out = export_onnx(
        tiny, tmp_path / "auto", quantize="auto", data={"task": "sst2", "data_dir": DATA, "max_eval_samples": 32}
    )
    a = json.loads((out / "alembert_export.json").read_text())["auto"]
    static = a["candidates"]["int8-static"]
    assert "dev" in static and static["seq_s_b32"] > 0  # built from 256 calibration texts and measured
    assert a["measured_on"] == "sst2 dev (32 examples)"


@pytest.mark.cli
def test_auto_needs_a_dev_set(tiny, tmp_path, capsys):
    with pytest.raises(AlembertError, match="pass --task"):
        export_onnx(tiny, tmp_path / "auto", quantize="auto")
    assert not (tmp_path / "auto").exists()
    assert main(["export", str(tiny), "--onnx", "--task", "sst2", "--output", str(tmp_path / "x")]) == 2
    assert "pass --quantize auto" in capsys.readouterr().err


def test_the_7bit_variant_only_without_an_int8_dot_product():
    assert "int8-dynamic-7bit" not in auto.default_candidates({"isa": ["AVX2", "AVX-512", "AVX512-VNNI"]})
    assert "int8-dynamic-7bit" in auto.default_candidates({"isa": ["AVX2", "FMA"]})  # AMD EPYC of issue 18
    assert "int8-dynamic-7bit" in auto.default_candidates({"isa": []})  # nothing detected: measure it too
    assert {"fp32", "int8-dynamic", "int8-static"} <= set(auto.default_candidates({"isa": []}))


def calibration_batches(tokenizer, n: int = 64) -> auto.Calibration:
    with open(DATA / "SST-2" / "train.tsv") as f:
        texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][:n]
    names = ["input_ids", "token_type_ids", "attention_mask"]
    batches = [
        {k: v.astype("int64") for k, v in tokenizer(texts[i : i + 16], padding=True, return_tensors="np").items()}
        for i in range(0, n, 16)
    ]
    return auto.Calibration([{k: b[k] for k in names} for b in batches], n)


@pytest.mark.export
def test_static_int8_runs_integer_matmuls_at_fixed_scales(tiny, tmp_path):
    """Every weight MatMul becomes an integer MatMul (no fake quantisation left for the session to turn
    into weight-only kernels), and a sentence's logits are the same alone, inside a batch and behind
    other sentences' padding; dynamic int8's are not (its activation scale is the batch's)."""
    from alembert.export.graph import build_graph, model_input_names
    from alembert.runtimes.onnxruntime import graph_model

    model = BertForSequenceClassification.from_pretrained(tiny).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    names = model_input_names(model, tokenizer)
    enc = tokenizer(["a gripping film", "dull"], padding=True, return_tensors="pt")
    fp32_dir = tmp_path / "fp32"
    fp32_dir.mkdir()
    build_graph(model, {n: enc[n] for n in names}, fp32_dir, model.config, None, None, "logits")
    fp32 = fp32_dir / "model.onnx"
    matmuls = sum(n.op_type == "MatMul" for n in onnx.load(fp32).graph.node)
    auto.build_int8_static(fp32, tmp_path / "static.onnx", calibration_batches(tokenizer))
    auto.build_int8_dynamic(fp32, tmp_path / "dynamic.onnx", None)
    ops = [n.op_type for n in onnx.load(tmp_path / "static.onnx").graph.node]
    assert ops.count("MatMulIntegerToFloat") == matmuls > 0
    assert "MatMul" not in ops and "DequantizeLinear" not in ops  # no weight-only path, no fake quantisation
    texts = ["a gripping, beautifully acted film that never lets go of you", "ok", "dull and far too long"]
    batch = {k: v.astype("int64") for k, v in tokenizer(texts, padding=True, return_tensors="np").items()}

    def run(graph, feeds):
        return graph.run(graph.prepare(feeds))

    gaps, fp = {}, run(graph_model(fp32, "logits"), batch)
    for name in ("static", "dynamic"):
        graph = graph_model(tmp_path / f"{name}.onnx", "logits")
        together = run(graph, batch)
        alone = [
            run(graph, {k: v.astype("int64") for k, v in tokenizer([t], return_tensors="np").items()})[0] for t in texts
        ]
        gaps[name] = float(np.abs(np.stack(alone) - together).max())
        assert np.abs(together - fp).max() < 0.1  # int8, close to fp32
    assert gaps["static"] < 1e-5  # the same logits whatever the batch
    assert gaps["dynamic"] > gaps["static"]


def fake_measure(figures):
    """alembert.measure.speed.measure with fixed seq/s (batch 32) per variant: the choice's rules, alone."""

    def measure(workloads, **_):
        return {n: {"throughput_seq_s": figures[n], "latency_ms_median": 1000 / figures[n]} for n in workloads}

    return measure


@pytest.mark.export
@pytest.mark.parametrize(("static_speed", "pick"), [(95.0, "int8-static"), (80.0, "int8-dynamic")])
def test_a_batch_invariant_variant_is_preferred_when_it_costs_under_ten_percent(
    tiny, own_dev, tmp_path, monkeypatch, static_speed, pick
):
    import alembert.measure.speed as speed

    monkeypatch.setattr(
        speed, "measure", fake_measure({"fp32": 50.0, "int8-dynamic": 100.0, "int8-static": static_speed})
    )
    monkeypatch.setattr(auto, "training_calibration", lambda cfg, task, tok, names, n=0: calibration_batches(tok))
    out = export_onnx(
        tiny, tmp_path / "auto", quantize="auto", data={"dev_file": own_dev}, candidates=["int8-dynamic", "int8-static"]
    )
    a = json.loads((out / "alembert_export.json").read_text())["auto"]
    assert a["variant"] == pick and a["batch_invariant"] == (pick == "int8-static")
    assert ("preferred to int8-dynamic" in a["reason"]) == (pick == "int8-static")


@pytest.mark.cli
def test_batch_invariant_leaves_out_dynamic_int8(tiny, own_dev, tmp_path, capsys, monkeypatch):
    import alembert.measure.speed as speed

    monkeypatch.setattr(speed, "measure", fake_measure({"fp32": 50.0, "int8-dynamic": 100.0, "int8-static": 60.0}))
    monkeypatch.setattr(auto, "training_calibration", lambda cfg, task, tok, names, n=0: calibration_batches(tok))
    out = tmp_path / "inv"
    flags = ["--onnx", "--quantize", "auto", "--batch-invariant", "--dev-file", str(own_dev)]
    assert main(["export", str(tiny), *flags, "--output", str(out)]) == 0
    a = json.loads((out / "alembert_export.json").read_text())["auto"]
    assert a["variant"] == "int8-static" and a["candidates"]["int8-dynamic"]["refused"].startswith(
        "not batch-invariant"
    )
    assert (
        main(
            ["export", str(tiny), "--onnx", "--quantize", "int8", "--batch-invariant", "--output", str(tmp_path / "x")]
        )
        == 2
    )
    assert "--batch-invariant chooses among --quantize auto's variants" in capsys.readouterr().err


@pytest.mark.cli
def test_threads_time_the_variants_and_are_restored(tiny, own_dev, tmp_path, capsys, monkeypatch):
    import torch

    import alembert.measure.speed as speed

    seen = []
    timed = fake_measure({"fp32": 50.0, "int8-dynamic": 100.0, "int8-static": 60.0})

    def measure(*a, **k):
        seen.append(torch.get_num_threads())
        return timed(*a, **k)

    monkeypatch.setattr(speed, "measure", measure)
    monkeypatch.setattr(auto, "training_calibration", lambda cfg, task, tok, names, n=0: calibration_batches(tok))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = tmp_path / "t1"
        flags = ["--onnx", "--quantize", "auto", "--dev-file", str(own_dev), "--threads", "1"]
        assert main(["export", str(tiny), *flags, "--output", str(out)]) == 0
        record = json.loads((out / "alembert_export.json").read_text())["auto"]
        assert record["threads"] == 1 and record["load_average"] >= 0
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        assert main(["export", str(tiny), "--onnx", "--threads", "0", "--output", str(tmp_path / "x")]) == 2
        assert "--threads must be at least 1, got 0" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_a_choice_timed_on_a_busy_machine_says_so():
    assert auto.busy_note(1.9, 2) == "" and auto.busy_note(3.0, None) == ""
    note = auto.busy_note(4.5, 2)
    assert "busy (load 4.5 on 2 cores)" in note and "export again" in note
