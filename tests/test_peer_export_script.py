"""benchmarks/peer_export.py end to end on a tiny random BERT (teacher = student), without the
optimum environment (--skip-peers): alembert's auto exports, the PyTorch and torch.ao variants,
fixed-length and real-length timing, dev scores and the report."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO
from test_export import DATA, make_tiny_model

pytestmark = pytest.mark.cli


def test_peer_script_reports_every_variant(tmp_path):
    tiny = make_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out"
    env = {**os.environ, "ALEMBERT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "peer_export.py"),
            "--student",
            str(tiny),
            "--teacher",
            str(tiny),
            "--data-dir",
            str(DATA),
            "--max-eval-samples",
            "40",
            "--repeats",
            "1",
            "--skip-peers",
            "--output",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "peer_export.json").read_text())
    rows = report["rows"]
    assert "teacher fp32 PyTorch" in rows and "student torch.ao dynamic int8" in rows
    mine = [n for n in rows if n.startswith("student alembert ")]
    assert len(mine) == 1 and report["alembert_exports"]["student"]["variant"] in mine[0]
    for r in rows.values():
        assert 0 <= r["dev"] <= 1 and r["seq_s_b32x128"] > 0 and r["sorted_b32_sent_s"] > 0
        assert 0 < r["arrival_b1_ms_p50"] <= r["arrival_b1_ms_p99"]
    s = report["summary"]
    assert s["vs_teacher_fp32_b32"] == rows[mine[0]]["seq_s_b32x128"] / rows["teacher fp32 PyTorch"]["seq_s_b32x128"]
    assert report["machine"]["isa"] is not None and report["peers"] is None
    limit = s["gemm_ceiling"]  # the student's export against this CPU's GEMM ceiling at its shapes, measured here
    assert limit["ceiling_gmac_s"] == limit["ceilings"][limit["ceiling"]] > 0 and limit["gmac_s"] > 0
    assert limit["fraction"] == pytest.approx(limit["gmac_s"] / limit["ceiling_gmac_s"])
    md = (out / "peer_export.md").read_text()
    assert "CPU " in md and "sentences/s" in md and mine[0] in md
