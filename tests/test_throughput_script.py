"""benchmarks/distill_throughput.py end to end on a tiny teacher: every variant reports, ratios follow."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = REPO / "benchmarks" / "distill_throughput.py"


def _script():
    spec = importlib.util.spec_from_file_location("distill_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_queues_gives_the_baseline_its_own_queue():
    plan = _script().plan_queues
    assert plan(["a", "b", "c"], 1) == [["a", "b", "c"]]
    assert plan(["a", "b", "c"], 2) == [["b"], ["a", "c"]]
    assert plan(["a", "b", "c"], 3) == [["b"], ["a"], ["c"]]
    assert plan(["a", "c"], 2) == [["a"], ["c"]]
    assert plan(["b"], 4) == [["b"]]


@pytest.mark.cli
def test_script_runs_every_variant_side_by_side(tiny_teacher, tmp_path):
    jobs = min(2, len(os.sched_getaffinity(0)))
    out = tmp_path / "bench"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--teacher",
            str(tiny_teacher),
            "--task",
            "sst2",
            "--max-train-samples",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--threads",
            "1",
            "--jobs",
            str(jobs),
            "--student-layers",
            "0,2",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "bench_throughput.json").read_text())
    assert set(report["results"]) == {"a", "b", "c"}
    for variant, result in report["results"].items():
        assert result["train_examples"] == 64, variant
        assert result["samples_per_s"] > 0 and 0.0 <= result["dev"] <= 1.0, variant
    a, b, c = (report["results"][v] for v in "abc")
    assert a["cache_s"] is not None and b["cache_s"] is None  # only alembert's kd builds a teacher cache
    assert report["ratios"]["a/b samples_per_s"] == pytest.approx(a["samples_per_s"] / b["samples_per_s"])
    assert report["ratios"]["a/c train wall"] == pytest.approx(a["train_s"] / c["train_s"])
    assert "| a: alembert kd" in proc.stdout and "a/b samples/s" in proc.stdout
