"""ONNX export of sentence-embedding models (tiny random sentence-transformers folders): one graph
with pooling, Dense and normalisation inside gives PyTorch's vectors; int8's STS-B figure through
``alembert evaluate`` is what onnxruntime gives when computed here by hand; bench on two
embedding models; an embedding export is refused where a classifier is expected."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import run_cli
from scipy.stats import spearmanr

from alembert.errors import AlembertError
from alembert.export.onnx import export_onnx
from alembert.models.sentence import load_embedding_model, read_spec
from alembert.runtimes import load_any, load_any_embedding
from alembert.runtimes.onnxruntime import OnnxEmbedder, OnnxRuntime

pytestmark = pytest.mark.export  # the module's fixture exports a graph

TEXTS = [
    "a cat sat on the mat",
    "the weather is nice today, or so the forecast said this morning",
    "ok",
    "stocks fell sharply on monday",
    "a man is playing a guitar",
]


@pytest.fixture(autouse=True)
def _caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "alembert-cache"
    monkeypatch.setenv("ALEMBERT_CACHE", str(cache))
    monkeypatch.setenv("MPLCONFIGDIR", str(cache / "matplotlib"))


def st_folder(path, encoder, mode: str, normalize: bool, dense: int | None = None):
    """A sentence-transformers folder written by sentence-transformers itself; with ``dense``, a
    Dense projection to that width appended (saved by alembert, read back as sentence-transformers does)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as m

    t = m.Transformer(str(encoder))
    modules = [t, m.Pooling(t.get_embedding_dimension(), pooling_mode=mode)] + ([m.Normalize()] if normalize else [])
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    if dense:
        model, tok = load_embedding_model(path)
        torch.manual_seed(1)
        model.dense.append(torch.nn.Linear(model.dim, dense))
        model.save(path, tok)
    return path


@pytest.fixture(scope="module")
def st_mean(tmp_path_factory, tiny_bert):
    return st_folder(tmp_path_factory.mktemp("st-mean"), tiny_bert, "mean", True)


@pytest.fixture(scope="module")
def mean_fp32(st_mean, tmp_path_factory):
    return export_onnx(st_mean, tmp_path_factory.mktemp("exports") / "mean-fp32")


def torch_vectors(folder, texts):
    model, tok = load_embedding_model(folder)
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**enc).embeddings.numpy()


def assert_matches_torch(src, out):
    onnx_model, tok = load_any_embedding(out, threads=1)
    assert isinstance(onnx_model, OnnxEmbedder)
    for texts in (TEXTS, TEXTS[1:2] * 3, TEXTS[2:3]):  # batch 5 padded, batch 3 of one length, batch 1
        enc = tok(texts, padding=True, return_tensors="pt")
        got = onnx_model(**enc).embeddings.numpy()
        want = torch_vectors(src, texts)
        assert got.shape == want.shape == (len(texts), onnx_model.dim)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_mean_pooling_graph_matches_torch_and_stays_an_embedding_folder(st_mean, mean_fp32):
    assert_matches_torch(st_mean, mean_fp32)
    info = json.loads((mean_fp32 / "alembert_export.json").read_text())
    assert (info["kind"], info["pooling"], info["normalize"], info["dim"]) == ("embedding", "mean", True, 32)
    assert info["outputs"] == ["sentence_embedding"] and info["max_abs_diff_vs_torch"] < 1e-4
    assert info["last_layer"] == "all tokens"  # mean pooling reads every token
    spec = read_spec(mean_fp32)  # still a sentence-transformers folder: modules.json, 1_Pooling, Normalize
    assert (spec.pooling, spec.normalize, spec.dense) == ("mean", True, [])
    assert (mean_fp32 / "1_Pooling" / "config.json").is_file() and (mean_fp32 / "config.json").is_file()
    import onnx

    graph = onnx.load(mean_fp32 / "model.onnx").graph
    assert [o.name for o in graph.output] == ["sentence_embedding"]
    assert {i.name for i in graph.input} == {"input_ids", "attention_mask", "token_type_ids"}
    assert [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim][1] == 32


@pytest.mark.parametrize(("mode", "normalize", "dense"), [("cls", False, None), ("mean", True, 48)])
def test_cls_pooling_and_dense_graphs_match_torch(tmp_path, tiny_bert, mode, normalize, dense):
    src = st_folder(tmp_path / "st", tiny_bert, mode, normalize, dense)
    out = export_onnx(src, tmp_path / "onnx")
    assert_matches_torch(src, out)
    info = json.loads((out / "alembert_export.json").read_text())
    assert info["pooling"] == mode and info["dim"] == (dense or 32)
    assert info["last_layer"] == ("first token only" if mode == "cls" else "all tokens")
    if dense:
        assert info["dense"] == [[32, dense]] and len(read_spec(out).dense) == 1


def independent_stsb_spearman(folder, max_length: int, batch_size: int) -> float:
    """STS-B dev Spearman of an ONNX export, computed here with a plain onnxruntime session, the
    same batches as alembert's encode() (int8 quantises activations per batch, so batching matters)."""
    from transformers import AutoTokenizer

    from alembert.embedding.evaluate import stsb_pairs

    a, b, gold = stsb_pairs()
    texts = list(dict.fromkeys(a + b))
    tok = AutoTokenizer.from_pretrained(folder)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    emb = np.zeros((len(texts), 32), np.float32)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="np")
        emb[idx] = session.run(["sentence_embedding"], {n: enc[n].astype(np.int64) for n in names})[0]
    pos = {t: i for i, t in enumerate(texts)}
    x, y = emb[[pos[t] for t in a]], emb[[pos[t] for t in b]]
    cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return float(spearmanr(cos, gold).statistic)


@pytest.mark.cli
def test_int8_export_evaluates_with_the_same_command(st_mean, mean_fp32, tmp_path, capsys):
    int8 = tmp_path / "int8"
    code, out, _ = run_cli(["export", st_mean, "--onnx", "--quantize", "int8", "--output", int8], capsys)
    assert code == 0 and "mean pooling, dim 32" in out
    import onnx

    ops = {n.op_type for n in onnx.load(int8 / "model.onnx").graph.node}
    assert "MatMulInteger" in ops and (int8 / "model.onnx").stat().st_size < (mean_fp32 / "model.onnx").stat().st_size
    figures = {}
    for name, folder in (("fp32", mean_fp32), ("int8", int8)):
        code, _, _ = run_cli(
            [
                "evaluate",
                folder,
                "--task",
                "stsb-zeroshot",
                "--max-length",
                64,
                "--batch-size",
                32,
                "--output",
                tmp_path / name,
            ],
            capsys,
        )
        assert code == 0
        figures[name] = json.loads((tmp_path / name / "eval_results.json").read_text())["spearman"]
    assert figures["int8"] == pytest.approx(independent_stsb_spearman(int8, 64, 32), abs=1e-4)
    assert figures["fp32"] == pytest.approx(independent_stsb_spearman(mean_fp32, 64, 32), abs=1e-4)
    assert abs(figures["int8"] - figures["fp32"]) < 0.05  # loose: a random tiny model


@pytest.mark.cli
def test_quantize_auto_scores_an_embedding_model_on_stsb_and_keeps_its_pooling(st_mean, tmp_path, capsys):
    """``--quantize auto`` on a sentence-transformers folder: each variant's vectors scored on STS-B dev
    (Spearman), static int8 calibrated on STS-B's training sentences, the chosen graph still an
    embedding export whose vectors match PyTorch's."""
    out = tmp_path / "auto"
    flags = ["--onnx", "--quantize", "auto", "--max-eval-samples", 200]
    code, printed, err = run_cli(["export", st_mean, *flags, "--output", out], capsys)
    assert code == 0, err
    info = json.loads((out / "alembert_export.json").read_text())
    a = info["auto"]
    assert a["metric"] == "spearman" and a["measured_on"] == "STS-B dev (200 pairs, Spearman)"
    assert info["kind"] == "embedding" and info["variant"] == a["variant"] and info["pooling"] == "mean"
    assert {"fp32", "int8-dynamic", "int8-static"} <= set(a["candidates"])
    assert "dev" in a["candidates"]["int8-static"]  # calibrated on STS-B's training sentences
    assert a["source_dev"] == pytest.approx(a["candidates"]["fp32"]["dev"], abs=1e-3)  # the fp32 graph = PyTorch
    assert info["min_cosine_vs_torch"] > 0.95 and f"quantize auto: {a['reason']}" in printed
    model, tok = load_any_embedding(out)
    assert model.dim == 32 and model(**tok(TEXTS, padding=True, return_tensors="pt")).embeddings.shape == (5, 32)


@pytest.mark.cli
def test_bench_two_embedding_models(st_mean, mean_fp32, tmp_path, capsys):
    out = tmp_path / "bench"
    code, printed, _ = run_cli(
        [
            "bench",
            st_mean,
            mean_fp32,
            "--task",
            "stsb-zeroshot",
            "--max-eval-samples",
            200,
            "--repeats",
            2,
            "--threads",
            1,
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0 and "dynamic padding" in printed
    result = json.loads((out / "bench.json").read_text())
    assert result["task"] == "stsb-zeroshot" and result["metric"] == "spearman" and result["dev_examples"] == 200
    ref, onnx_row = result["models"]
    assert [ref["kind"], onnx_row["kind"]] == ["pytorch", "onnx-fp32"]
    for m in result["models"]:
        assert m["throughput_seq_s"] > 0 and m["latency_ms_p90"] >= m["latency_ms_median"] > 0
    assert onnx_row["speedup_throughput"] == pytest.approx(onnx_row["throughput_seq_s"] / ref["throughput_seq_s"])
    assert onnx_row["dev_metric"] == pytest.approx(ref["dev_metric"], abs=1e-4)  # same vectors
    assert ref["params"] == onnx_row["params"] > ref["params_no_embeddings"] > 0
    assert (out / "bench.md").read_text().count("\n| ") == 2


@pytest.mark.cli
def test_embedding_export_is_refused_where_a_classifier_is_expected(mean_fp32, tmp_path, capsys):
    assert OnnxRuntime().probe(mean_fp32)
    with pytest.raises(AlembertError, match="stsb-zeroshot"):
        load_any(mean_fp32)
    code, _, err = run_cli(
        ["evaluate", mean_fp32, "--task", "sst2", "--max-eval-samples", 8, "--output", tmp_path], capsys
    )
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    with pytest.raises(AlembertError, match="already an ONNX export"):
        export_onnx(mean_fp32, tmp_path / "again")


@pytest.mark.parametrize("bad", ["../outside", "/tmp/alembert-hostile-module", "1_Pooling/../../escape"])
def test_module_paths_leaving_the_model_folder_are_refused(st_mean, tmp_path, bad):
    """A model folder is untrusted input: a modules.json path outside it is one line naming the entry,
    before anything is read or written outside (issue 32)."""
    import shutil

    from alembert.errors import AlembertError

    src = tmp_path / "hostile"
    shutil.copytree(st_mean, src)
    modules = json.loads((src / "modules.json").read_text())
    modules[1]["path"] = bad  # the Pooling module
    (src / "modules.json").write_text(json.dumps(modules))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(AlembertError) as info:
        export_onnx(src, tmp_path / "out")
    message = str(info.value)
    assert "modules.json entry 1" in message and "outside the model folder" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not Path("/tmp/alembert-hostile-module").exists()
