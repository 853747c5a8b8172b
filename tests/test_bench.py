"""``alembert bench`` on a tiny torch model, its ONNX export and its int8 export:
every field for every model, the table, and non-empty plots."""

import json
from pathlib import Path

import pytest
from test_export import make_tiny_model

from alembert.cli.main import main
from alembert.measure.report import pareto_front

DATA = Path(__file__).resolve().parents[2] / "shared/data/glue_data"
FIELDS = {
    "name",
    "path",
    "kind",
    "device",
    "runtime",
    "attention",
    "params",
    "params_no_embeddings",
    "disk_mb",
    "dev_metrics",
    "dev_metric",
    "retention_pct",
    "latency_ms_median",
    "latency_ms_p90",
    "throughput_seq_s",
    "speedup_throughput",
    "speedup_latency",
}


@pytest.fixture(autouse=True)
def _caches(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEMBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "cache" / "matplotlib"))


@pytest.mark.cli
def test_bench_torch_onnx_int8(tmp_path, capsys):
    tiny = make_tiny_model(tmp_path / "tiny")
    assert main(["export", str(tiny), "--onnx", "--output", str(tmp_path / "tiny-onnx")]) == 0
    assert main(["export", str(tiny), "--onnx", "--quantize", "int8", "--output", str(tmp_path / "tiny-int8")]) == 0
    out = tmp_path / "bench"
    models = [str(tiny), str(tmp_path / "tiny-onnx"), str(tmp_path / "tiny-int8")]
    argv = [
        "bench",
        *models,
        "--task",
        "sst2",
        "--data-dir",
        str(DATA),
        "--max-eval-samples",
        "24",
        "--repeats",
        "2",
        "--threads",
        "1",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "tiny-int8" in printed and "128 tokens" in printed and "CPU " in printed  # the footer names the CPU

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
    machine = result["machine"]
    assert machine["cpu_model"] and isinstance(machine["isa"], list) and machine["logical_cpus"] >= 1
    assert machine["torch"] and machine["onnxruntime"]
    assert set(result["serving"]["modes"]) == {"arrival_b1", "arrival_b32", "sorted_b32"}
    assert result["serving"]["sentences"] == 24  # the (limited) dev set, each text once
    for m in result["models"]:
        for mode, s in m["serving"].items():
            assert s["sentences_s"] > 0 and 0 < s["ms_p50"] <= s["ms_p90"] <= s["ms_p99"], mode
        assert m["serving"]["arrival_b1"]["calls"] == 24 * 2 and m["serving"]["sorted_b32"]["calls"] == 1 * 2
        assert m["sorted32_sent_s"] == m["serving"]["sorted_b32"]["sentences_s"]
    table = (out / "bench.md").read_text()
    assert table.count("\n| ") == 3 and "retention %" in table and "real b32 sorted sent/s" in table
    assert "AVX" in table or "none of AVX2" in table  # the CPU line, whatever this CPU has
    for png in ("metric_vs_latency.png", "metric_vs_size.png"):
        assert (out / png).stat().st_size > 1000


@pytest.mark.cli
def test_bench_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["bench", str(tmp_path / "empty"), "--task", "sst2", "--data-dir", str(DATA)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json" in err and err.count("\n") == 1


def test_pareto_front():
    # (latency, metric): the slow-and-worse point (3, 0.7) is dominated
    assert pareto_front([(10, 0.9), (3, 0.7), (2, 0.8), (1, 0.6)]) == [3, 2, 0]


def test_table_fits_80_columns():
    """The rich table of a demo-like bench at 80 columns: every model name whole, no cell cut."""
    from rich.console import Console

    from alembert.cli.common import rich_table
    from alembert.measure.report import terminal_rows

    names = ["teacher", "student", "student-int8", "teacher-int8", "student-fp32-onnx"]
    kinds = ["pytorch", "pytorch", "onnx-int8", "onnx-int8", "onnx-fp32"]
    serving = {
        "arrival_b1": {"ms_p50": 2.61, "ms_p90": 3.2, "ms_p99": 9.87, "sentences_s": 380.0},
        "arrival_b32": {"sentences_s": 1234.5},
        "sorted_b32": {"sentences_s": 2083.4},
    }
    models = [
        {
            "name": n,
            "kind": k,
            "params": 22.7e6,
            "params_no_embeddings": 10.8e6,
            "disk_mb": 90.91,
            "dev_metric": 0.84518,
            "retention_pct": 96.2183,
            "latency_ms_median": 12.71,
            "latency_ms_p90": 14.1,
            "throughput_seq_s": 567.62,
            "speedup_throughput": 5.7612,
            "speedup_latency": 4.8,
            "serving": serving,
            "sorted32_sent_s": 2083.4,
            "arrival32_sent_s": 1234.5,
            "arrival1_ms_p50": 2.61,
            "arrival1_ms_p99": 9.87,
            "speedup_sorted32": 10.5,
        }
        for n, k in zip(names, kinds, strict=True)
    ]
    result = {"metric": "accuracy", "seq_len": 128, "batch_size": 32, "models": models}
    console = Console(width=80, record=True, color_system=None)
    console.print(rich_table("bench: sst2 (reference teacher)", terminal_rows(result)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # nothing truncated
    # the last screen of a log or of `make demo`: every model, in 80 columns, nothing cut
    from alembert.measure.report import summary

    result |= {"task": "sst2", "reference": "runs/demo/teacher"}
    result["models"][2]["name"] = "runs/demo/a-long-folder-name/student-int8"
    lines = summary(result).splitlines()
    assert max(map(len, lines)) <= 80 and len(lines) == 2 + len(models)
    assert lines[4].split() == ["…-folder-name/student-int8", "int8", "0.8452", "96.2", "5.76x", "4.80x", "90.9"]
    for n in names:
        assert n in text, text
    assert "96.2" in text and "96.2183" not in text and "5.76x" in text  # sensible precision


def test_format_cell_precision():
    from alembert.cli.common import format_cell

    assert format_cell("train s", 379.4) == "379 s"
    assert format_cell("retention %", 96.2) == "96.2"
    assert format_cell("accuracy", 0.84518) == "0.8452"
    assert format_cell("step", 250) == "250"


def test_cpu_facts_read_the_flags(tmp_path):
    """The instruction sets come from the running machine's flags, never assumed: an AVX2-only
    EPYC reads as such, and a machine without /proc/cpuinfo still gets a record."""
    from alembert.machine import cpu_facts, cpu_line, has_int8_dot

    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
    )
    facts = cpu_facts(str(info))
    assert facts["cpu_model"] == "AMD EPYC 7B13" and facts["isa"] == ["AVX2", "FMA"] and not has_int8_dot(facts)
    assert "AMD EPYC 7B13 (AVX2, FMA;" in cpu_line(facts) and facts["torch"] and facts["logical_cpus"] >= 1
    missing = cpu_facts(str(tmp_path / "absent"))
    assert missing["isa"] == [] and missing["cpu_model"] and "none of AVX2" in cpu_line(missing)


@pytest.mark.cli
def test_bench_without_serving(tmp_path):
    tiny = make_tiny_model(tmp_path / "tiny")
    out = tmp_path / "bench"
    assert (
        main(
            [
                "bench",
                str(tiny),
                "--task",
                "sst2",
                "--data-dir",
                str(DATA),
                "--max-eval-samples",
                "8",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--threads",
                "1",
                "--no-serving",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "bench.json").read_text())
    assert result["serving"] is None and "serving" not in result["models"][0]
    assert "real b32" not in (out / "bench.md").read_text()
