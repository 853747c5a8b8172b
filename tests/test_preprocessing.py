"""The preprocessing a model was trained with travels in its config.json and becomes the default."""

import json

import pytest
from conftest import run_cli

from alembert.models.preprocessing import max_length_for, saved

pytestmark = pytest.mark.cli


def test_max_length_travels_with_the_model(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "short"
    code, _, err = run_cli(
        [
            "distill",
            "--transfer",
            "none",
            "--teacher",
            tiny_teacher,
            "--recipe",
            "kd",
            "--task",
            "sst2",
            "--max-train-samples",
            16,
            "--max-eval-samples",
            8,
            "--max-steps",
            1,
            "--batch-size",
            8,
            "--student-layers",
            "0",
            "--max-length",
            64,
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    assert saved(out) == {"task_kind": "classification", "max_length": 64}
    assert max_length_for(out, None, 128) == 64 and max_length_for(out, 32, 128) == 32

    code, _, err = run_cli(
        ["evaluate", out, "--task", "sst2", "--max-eval-samples", 8, "--output", tmp_path / "ev"], capsys
    )
    assert code == 0, err
    assert json.loads((tmp_path / "ev" / "eval_results.json").read_text())["max_length"] == 64
    code, _, err = run_cli(
        ["evaluate", out, "--task", "sst2", "--max-eval-samples", 8, "--max-length", 32, "--output", tmp_path / "ev"],
        capsys,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "ev" / "eval_results.json").read_text())["max_length"] == 32  # a flag overrides

    code, _, err = run_cli(
        [
            "bench",
            out,
            "--task",
            "sst2",
            "--max-eval-samples",
            8,
            "--repeats",
            1,
            "--warmup",
            0,
            "--output",
            tmp_path / "bench",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "bench" / "bench.json").read_text())["seq_len"] == 64
