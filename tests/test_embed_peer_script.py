"""benchmarks/embed_peer.py end to end on a tiny sentence-transformers teacher: both variants train and are scored."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, save_tiny
from test_embedding import st_folder

pytestmark = pytest.mark.cli


def test_peer_script_reports_both_variants_from_one_fitted_start(tmp_path, tiny_bert, bert_tokenizer):
    """A teacher wider than the student (48 vs 32): the shared start gets a Dense layer, fitted
    once by Procrustes before either variant trains; both variants train that folder."""
    wide = save_tiny(tmp_path / "wide", bert_tokenizer, hidden=48, seed=1)
    teacher = st_folder(tmp_path / "teacher", wide, "mean", True)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"sentence number {i} about topic {i % 7}" for i in range(48)))
    out = tmp_path / "out"
    env = {**os.environ, "ALEMBERT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "embed_peer.py"),
            "--teacher",
            str(teacher),
            "--student",
            str(tiny_bert),
            "--student-layers",
            "0,2",
            "--corpus",
            str(texts),
            "--transfer-task",
            "",
            "--max-length",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--jobs",
            "1",
            "--projection-init",
            "procrustes",
            "--output",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "embed_peer.json").read_text())
    a, b = report["results"]["a"], report["results"]["b"]
    assert a["texts"] == b["texts"] == 48
    fit = report["prepared"]["projection"]
    assert (fit["projection_init"], fit["texts"]) == ("procrustes", 48) and -1 <= fit["mean_cosine"] <= 1
    assert "Dense from procrustes" in report["prepared"]["student"]
    assert json.loads((out / "init" / "modules.json").read_text())[-2]["type"].endswith("Dense")
    assert report["ratio"] == a["samples_per_s"] / b["samples_per_s"]
    for r in (a, b):
        assert set(r["dev"]) == {"stsb-zeroshot", "squad-retrieval"}
    assert "a/b samples/s" in (out / "embed_peer.md").read_text()
