"""``alembert bench`` on a tiny torch model, its ONNX export and its int8 export:
every field for every model, the table, and non-empty plots."""

import json
from pathlib import Path

import pytest
from test_export import make_tiny_model

from alembert.benchmark.report import pareto_front
from alembert.cli.main import main

DATA = Path(__file__).resolve().parents[2] / "shared/data/glue_data"
FIELDS = {"name", "path", "kind", "device", "runtime", "attention", "params", "params_no_embeddings", "disk_mb",
          "dev_metrics", "dev_metric", "retention_pct", "latency_ms_median", "latency_ms_p90", "throughput_seq_s",
          "speedup_throughput", "speedup_latency"}


@pytest.fixture(autouse=True)
def _caches(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEMBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "cache" / "matplotlib"))


def test_bench_torch_onnx_int8(tmp_path, capsys):
    tiny = make_tiny_model(tmp_path / "tiny")
    assert main(["export", str(tiny), "--onnx", "--output", str(tmp_path / "tiny-onnx")]) == 0
    assert main(["export", str(tiny), "--onnx", "--quantize", "int8", "--output", str(tmp_path / "tiny-int8")]) == 0
    out = tmp_path / "bench"
    models = [str(tiny), str(tmp_path / "tiny-onnx"), str(tmp_path / "tiny-int8")]
    argv = ["bench", *models, "--task", "sst2", "--data-dir", str(DATA), "--max-eval-samples", "24",
            "--repeats", "2", "--threads", "1", "--output", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "tiny-int8" in printed and "128 tokens" in printed

    result = json.loads((out / "bench.json").read_text())
    assert result["dev_examples"] == 24 and result["threads"] == 1 and result["reference"] == "tiny"
    assert [m["kind"] for m in result["models"]] == ["pytorch", "onnx-fp32", "onnx-int8"]
    for m in result["models"]:
        assert FIELDS <= set(m), FIELDS - set(m)
        assert all(m[f] is not None for f in FIELDS - {"retention_pct"})
        assert m["latency_ms_p90"] >= m["latency_ms_median"] > 0 and m["throughput_seq_s"] > 0
    ref, fp32, int8 = result["models"]
    assert ref["speedup_throughput"] == pytest.approx(1.0) and ref["speedup_latency"] == pytest.approx(1.0)
    assert ref["params"] == fp32["params"] == int8["params"] > ref["params_no_embeddings"] > 0
    assert int8["disk_mb"] < fp32["disk_mb"]
    assert fp32["dev_metric"] == pytest.approx(ref["dev_metric"])  # same logits, same predictions
    table = (out / "bench.md").read_text()
    assert table.count("\n| ") == 3 and "retention %" in table
    for png in ("metric_vs_latency.png", "metric_vs_size.png"):
        assert (out / png).stat().st_size > 1000


def test_bench_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["bench", str(tmp_path / "empty"), "--task", "sst2", "--data-dir", str(DATA)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json" in err and err.count("\n") == 1


def test_pareto_front():
    # (latency, metric): the slow-and-worse point (3, 0.7) is dominated
    assert pareto_front([(10, 0.9), (3, 0.7), (2, 0.8), (1, 0.6)]) == [3, 2, 0]
