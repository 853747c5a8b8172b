"""``alembert frontier``: the builders' offers, the speed prediction, the plan's budgets, the Pareto set and
the choice against hand-made cases, the chart, and the whole run on a tiny teacher (a kill between two
candidates resumed, nothing trained twice; bad budgets said before any training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alembert.errors import AlembertError
from alembert.frontier.choose import choose, pareto
from alembert.frontier.plan import OVER_TIME, Candidate, apply_budget, fit_time, offered


def _config(layers=12, hidden=768, heads=12, ffn=3072, vocab=30522):
    from transformers import BertConfig

    return BertConfig(
        num_hidden_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
    )


def _row(name, metric, speed, ms=1.0, teacher=(0.9, 10.0)):
    return {
        "name": name,
        "dev_metric": metric,
        "throughput_seq_s": speed,
        "latency_ms_median": ms,
        "retention_pct": 100 * metric / teacher[0],
        "speedup_throughput": speed / teacher[1],
    }


def test_every_builder_offers_its_students_for_the_teacher_shape():
    by_name = {c.name: c for c in offered(_config(), sentence=False)}
    # depth slices spread from the first layer: every other, every third, every fourth
    assert by_name["layers-6"].fields == {"layers": [0, 2, 4, 6, 8, 10]}
    assert by_name["layers-4"].fields == {"layers": [0, 3, 6, 9]}
    assert by_name["layers-3"].fields == {"layers": [0, 4, 8]}
    # pruned: half the depth and half the FFN, at full width and with half the heads (all-MiniLM-L6-v2's shape)
    assert by_name["prune-6l-6h-ffn1536"].shape == {
        "num_hidden_layers": 6,
        "intermediate_size": 1536,
        "num_attention_heads": 6,
        "hidden_size": 384,
    }
    assert by_name["prune-6l-ffn1536"].fields["prune"] == {"ffn": 1536, "layers": [0, 2, 4, 6, 8, 10]}
    assert not any(c.builder == "static" for c in by_name.values())  # a classifier has no static student
    static = [c for c in offered(_config(), sentence=True) if c.builder == "static"]
    assert [(c.fields["dim"], c.quantize, c.train["lr"]) for c in static] == [(256, None, 3e-3)]
    narrow = [c for c in offered(_config(hidden=128, heads=2, ffn=256), sentence=True) if c.builder == "static"]
    assert narrow[0].fields["dim"] == 128  # never wider than the teacher


def test_predict_times_each_shape_and_counts_its_parameters():
    from transformers import AutoModel

    from alembert.frontier.predict import predict

    config = _config(layers=4, hidden=32, heads=2, ffn=64)
    shapes = {"teacher": {}, "half": {"num_hidden_layers": 2}, "static": {"static_dim": 16}}
    speeds = predict(  # one OpenVINO conversion; the static shape's random model is its builder's
        config, shapes, seq_len=16, threads=1, repeats=1, int8={"teacher"}, builders={"static": "static"}
    )
    assert speeds["teacher"]["parameters"] == sum(p.numel() for p in AutoModel.from_config(config).parameters())
    assert speeds["half"]["parameters"] < speeds["teacher"]["parameters"]
    assert speeds["static"]["parameters"] == 30522 * 16 + 30522  # vectors and token weights
    assert set(speeds["teacher"]) == {"parameters", "fp32", "int8", "int8_by"}
    assert speeds["teacher"]["int8_by"] == "openvino"  # installed here: the runtime --quantize auto picks most
    assert "int8" not in speeds["half"] and "int8" not in speeds["static"]  # only the shapes asked for
    assert all(s["fp32"]["throughput_seq_s"] > 0 and s["fp32"]["latency_ms_median"] > 0 for s in speeds.values())


def _candidate(name, params, fp32, int8=None, cost=None, cache=0.0):
    predicted = {"fp32": {"throughput_seq_s": fp32[0], "latency_ms_median": fp32[1]}}
    if int8:
        predicted["int8"] = {"throughput_seq_s": int8[0], "latency_ms_median": int8[1]}
    c = Candidate(name, "layers", {}, {}, {}, "auto", params, predicted)
    c.cost_s, c.cache_s = cost, cache
    return c


TEACHER = {"fp32": {"throughput_seq_s": 10.0, "latency_ms_median": 20.0}}


def test_the_speed_budget_drops_the_candidates_no_variant_of_which_meets_it():
    big = _candidate("big", 60, fp32=(20.0, 10.0), int8=(60.0, 4.0))
    small = _candidate("small", 20, fp32=(40.0, 5.0), int8=(120.0, 1.5))
    apply_budget([big, small], TEACHER, budget_ms=2.0, speedup=None)
    assert small.planned
    assert big.status == "dropped: predicted 4.00 ms at batch 1 > 2 ms (int8)"  # its fastest variant still misses
    big.status = small.status = "planned"
    apply_budget([big, small], TEACHER, budget_ms=None, speedup=5.0)  # int8 makes big 6x: kept
    assert big.planned and small.planned


def test_a_budget_nothing_can_meet_is_one_line_naming_the_fastest():
    small = _candidate("small", 20, fp32=(40.0, 5.0), int8=(120.0, 1.5))
    with pytest.raises(AlembertError, match=r"--budget-ms 0\.1.*the fastest, small \(int8\), is predicted at 1\.50 ms"):
        apply_budget([small], TEACHER, budget_ms=0.1, speedup=None)


def test_the_time_budget_takes_the_largest_first_and_counts_the_shared_cache_once():
    a = _candidate("a", 60, (1, 1), cost=100.0, cache=40.0)
    b = _candidate("b", 40, (1, 1), cost=90.0, cache=40.0)  # 50 s once the cache is there
    c = _candidate("c", 20, (1, 1), cost=80.0, cache=40.0)  # 40 s
    assert fit_time([c, b, a], 160.0) == 150.0  # a (100, cache paid) + b (50); c's 40 s would pass 160
    assert [x.status for x in (a, b, c)] == ["planned", "planned", OVER_TIME]
    d, e = _candidate("d", 60, (1, 1), cost=500.0), _candidate("e", 20, (1, 1), cost=50.0)
    assert fit_time([d, e], 100.0) == 50.0  # the one that does not fit is passed over, a smaller one still fits
    assert d.status == OVER_TIME and e.planned


def test_pareto_keeps_the_models_no_other_beats_on_both():
    rows = [
        _row("teacher", 0.90, 10),
        _row("slow-bad", 0.80, 9),  # dominated by the teacher
        _row("mid", 0.88, 50),
        _row("tie", 0.88, 50),  # equal to mid: neither dominates the other
        _row("fast", 0.70, 400),
        _row("worse-fast", 0.69, 300),  # dominated by fast
    ]
    assert pareto(rows) == ["fast", "mid", "tie", "teacher"]


def test_choose_the_best_within_a_speed_budget_and_name_the_closest_when_none_is():
    rows = [_row("teacher", 0.90, 10, ms=20), _row("mid", 0.88, 50, ms=4), _row("fast", 0.70, 400, ms=0.5)]
    best, why = choose(rows, {"budget_ms": 5})
    assert best["name"] == "mid" and "within the budget" in why
    best, why = choose(rows, {"speedup": 10})
    assert best["name"] == "fast"
    best, why = choose(rows, {"min_retention": 95})  # quality only: the fastest that keeps it
    assert best["name"] == "mid" and "fastest" in why
    best, why = choose(rows, {"budget_ms": 0.1})
    assert best is None and why.startswith("no model meets batch-1 latency <= 0.1 ms: the closest, fast, misses")
    best, why = choose(rows, {"budget_ms": 1, "min_retention": 90})  # fast meets the speed only, mid neither
    assert best is None and "the closest, fast" in why and "keeps 77.8%" in why
    assert choose(rows, {})[0] is None


def test_the_chart_is_a_png(tmp_path):
    from alembert.frontier.chart import frontier_chart

    rows = [_row("teacher", 0.9, 10), _row("a", 0.88, 50), _row("peer", 0.8, 30)]
    path = frontier_chart(
        rows,
        ["a", "teacher"],
        tmp_path / "f.png",
        metric="accuracy",
        title="t",
        teacher="teacher",
        best="a",
        peers=("peer",),
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_budget_durations():
    from alembert.cli.frontier import duration

    assert [duration(x) for x in ("3h", "90m", "45min", "600s", "600", "1.5h")] == [10800, 5400, 2700, 600, 600, 5400]
    with pytest.raises(AlembertError, match="expected a duration like 3h"):
        duration("three hours")


# ---------------------------------------------------------------- the whole run on a tiny teacher


def _args(teacher, out, *extra):
    """A tiny frontier; int8 predicted and exported as ONNX Runtime's dynamic int8 (OpenVINO's prediction, the
    default, is tested above on its own: its conversion per shape would dominate these runs)."""
    return [
        "frontier",
        "--teacher",
        teacher,
        "--task",
        "sst2",
        "--max-train-samples",
        "48",
        "--max-eval-samples",
        "32",
        "--max-length",
        "32",
        "--transfer",
        "none",
        "--epochs",
        "1",
        "--bench-threads",
        "1",
        "--no-peers",
        "--quantize",
        "int8",
        "--output",
        out,
        *extra,
    ]


@pytest.mark.cli
@pytest.mark.train
def test_impossible_budgets_are_said_before_any_training(tiny_teacher, tmp_path, capsys):
    from conftest import run_cli

    out = tmp_path / "f"
    code, _, err = run_cli(_args(tiny_teacher, out, "--budget-ms", "0.000001"), capsys)
    assert code != 0 and "no candidate can meet --budget-ms 1e-06 on this CPU; the fastest" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    code, _, err = run_cli(_args(tiny_teacher, out, "--candidates", "layers-2", "--time-budget", "1s"), capsys)
    assert code != 0 and "no candidate's training fits --time-budget 1 s: the cheapest, layers-2" in err
    assert not out.exists()
    code, _, err = run_cli(_args(tiny_teacher, out, "--candidates", "layers-9"), capsys)
    assert code != 0 and "--candidates layers-9: not offered" in err and "layers-2" in err
    code, stdout, _ = run_cli(_args(tiny_teacher, out, "--dry-run", "--candidates", "layers-2,layers-1"), capsys)
    assert code == 0 and not out.exists()  # the plan is printed, nothing is written
    assert "frontier plan: 2 of 2 candidates" in stdout
    # pkd-skip (the default) has no layer pairs for a 1-layer student: it falls back on kd, and the plan says so
    assert "frontier: layers-1 trains with kd (the pkd term's mapping 'skip' gives no layer pairs" in stdout
    assert [ln.split()[-1] for ln in stdout.splitlines() if ln.startswith(("layers-2 ", "layers-1 "))] == [
        "planned",
        "(kd)",
    ]


@pytest.mark.cli
@pytest.mark.train
@pytest.mark.export
def test_a_killed_frontier_resumes_where_it_stopped(tiny_teacher, tmp_path, capsys, monkeypatch):
    from conftest import run_cli

    from alembert.tasks.classification import Classification

    out = tmp_path / "f"
    real = Classification.distill_student
    trained = []

    def killed_on_the_second(self, fc, student, train, output_dir, **run):
        if not run.get("dry_run"):
            trained.append(Path(output_dir).name)
            if len(trained) == 2:
                raise KeyboardInterrupt
        return real(self, fc, student, train, output_dir, **run)

    monkeypatch.setattr(Classification, "distill_student", killed_on_the_second)
    args = _args(tiny_teacher, out, "--candidates", "layers-2,prune-2l-1h-ffn32", "--min-retention", "1")
    args[args.index("int8")] = "none"  # no exports: the resume is what is tested
    code, _, _ = run_cli(args, capsys)
    assert code == 130  # interrupted: the first candidate is complete, the second not started
    plan = json.loads((out / "plan.json").read_text())
    first = out / "students" / trained[0] / "metrics.json"
    assert first.is_file() and not (out / "frontier.json").exists()
    stamp = first.stat().st_mtime_ns

    trained.clear()
    monkeypatch.setattr(Classification, "distill_student", real)
    code, stdout, _ = run_cli([*args, "--resume"], capsys)
    assert code == 0
    assert first.stat().st_mtime_ns == stamp  # not trained again
    assert (
        json.loads((out / "plan.json").read_text())["candidates"][0]["predicted"] == plan["candidates"][0]["predicted"]
    )
    summary = json.loads((out / "frontier.json").read_text())
    names = {r["name"] for r in summary["rows"]}
    assert names == {Path(tiny_teacher).name, "layers-2", "prune-2l-1h-ffn32"}
    assert summary["rows"][0]["name"] == Path(tiny_teacher).name  # the reference
    assert summary["pareto"] and set(summary["pareto"]) <= names
    fastest = max(summary["rows"], key=lambda r: r["throughput_seq_s"])
    assert summary["best"] == fastest["name"]  # every model keeps 1%: the fastest wins
    assert (out / "best").resolve() == Path(fastest["path"]).resolve()
    assert "Why alembert frontier chose this model" in (out / "best" / "README.md").read_text()
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert all(len(line) <= 80 for line in summary["table"])
    assert summary["best"] in stdout
    bench = json.loads((out / "bench" / "bench.json").read_text())["machine"]  # the bench's load, not the plan's
    assert f"load average {bench['loadavg_1min_before']:.1f} before" in (out / "frontier.md").read_text()


@pytest.mark.cli
@pytest.mark.train
def test_exports_and_peers_are_measured_beside_the_students(tiny_teacher, tiny_bert, tmp_path, capsys, monkeypatch):
    from conftest import run_cli

    from alembert.tasks.base import Peer
    from alembert.tasks.classification import Classification

    made = []

    def make(folder, resume):  # stands for a fine-tuning run: a better "peer" than any tiny student
        import shutil

        made.append(resume)
        shutil.copytree(tiny_teacher, folder)

    monkeypatch.setattr(Classification, "peers", lambda self, fc: [Peer("copy", "a stand-in", make=make)])
    out = tmp_path / "f"
    args = [a for a in _args(tiny_teacher, out, "--candidates", "layers-2") if a != "--no-peers"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads((out / "frontier.json").read_text())
    assert made == [False]
    rows = {r["name"]: r for r in summary["rows"]}
    assert set(rows) == {Path(tiny_teacher).name, "teacher-export", "layers-2", "layers-2-export", "copy"}
    assert rows["layers-2-export"]["variant"] == "int8-dynamic" and rows["layers-2"]["variant"] == "pytorch"
    assert rows["copy"]["peer"] and not rows["layers-2"]["peer"]
    # the peer is the teacher's copy: the teacher is as good, and measured as fast or not, one verdict is given
    assert summary["peers"]["copy"].startswith(("dominated by", "not dominated"))
    assert summary["best"] is None and "Pareto set is the answer" in summary["why"]  # no budget given


@pytest.mark.cli
@pytest.mark.train
def test_an_embedding_frontier_plans_static_students_and_its_peers(tiny_bert, tmp_path, capsys):
    from conftest import run_cli
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    t = models.Transformer(str(tiny_bert))
    pooling = models.Pooling(t.get_embedding_dimension(), pooling_mode="mean")
    teacher = tmp_path / "st"
    SentenceTransformer(modules=[t, pooling, models.Normalize()], device="cpu").save(str(teacher))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"sentence number {i} about topic {i % 7}" for i in range(64)))
    out = tmp_path / "f"
    argv = ["frontier", "--teacher", teacher, "--task", "stsb-zeroshot", "--corpus", corpus, "--max-length", 16]
    argv += ["--candidates", "layers-2,static-32", "--quantize", "none", "--epochs", 1, "--dry-run", "--output", out]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "frontier plan: 2 of 2 candidates" in stdout and not out.exists()
    static = next(line for line in stdout.splitlines() if line.startswith("static-32"))
    assert static.split()[3] == "-"  # a token table has no int8 variant
    assert "peer model2vec-256: model2vec.distill of the teacher" in stdout
    assert "peer minilm-l6: all-MiniLM-L6-v2 as it ships" in stdout


def test_the_api_keywords_give_the_cli_config(tmp_path):
    from test_api import api_config, cli_config

    from alembert.cli import frontier as command
    from alembert.config.schema import FrontierConfig

    argv = ["--teacher", "mpnet-base", "--task", "stsb-zeroshot", "--corpus", "squad", "a.txt", "--transfer-task"]
    argv += ["stsb,rte", "--time-budget", "90m", "--speedup", 10, "--no-peers", "--quantize", "int8", "--lr", 1e-3]
    argv += ["--output", tmp_path / "o"]
    cli = cli_config(FrontierConfig, "frontier", argv)
    api = api_config(
        FrontierConfig,
        "frontier",
        command,
        teacher="mpnet-base",
        task="stsb-zeroshot",
        corpus=["squad", "a.txt"],
        transfer_task="stsb,rte",
        time_budget="90m",
        speedup=10,
        no_peers=True,
        quantize="int8",
        lr=1e-3,
        output=tmp_path / "o",
    )
    assert api == cli
    assert (cli.time_budget, cli.corpus.transfer_tasks, cli.peers, cli.train.model_fields_set) == (
        5400.0,
        ["stsb", "rte"],
        False,
        {"lr"},  # what the user set: the kind's student_train fills the rest
    )
