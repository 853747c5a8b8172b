"""A run killed with SIGKILL mid-way resumes to exactly the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from safetensors.torch import load_file

from alembert.errors import AlembertError
from alembert.training.checkpoint import latest_checkpoint, list_checkpoints

HELPER = Path(__file__).parent / "helpers" / "slow_save.py"


def args(model, out, *extra):
    return [
        "finetune",
        "--model",
        model,
        "--task",
        "sst2",
        "--max-train-samples",
        96,
        "--max-eval-samples",
        16,
        "--epochs",
        2,
        "--batch-size",
        8,
        "--eval-every",
        5,
        "--save-every",
        4,
        "--keep-checkpoints",
        2,
        "--lr",
        1e-3,
        "--output",
        out,
        *extra,
    ]


def final_weights(out):
    return load_file(str(list_checkpoints(out)[-1] / "model.safetensors"))


@pytest.mark.cli
def test_sigkill_then_resume_matches_uninterrupted(tiny_bert, tmp_path, capsys):
    full, killed = tmp_path / "full", tmp_path / "killed"
    code, _, err = run_cli(args(tiny_bert, full), capsys)
    assert code == 0, err

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, str(HELPER), "3", "60", *map(str, args(tiny_bert, killed))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for line in proc.stdout:  # wait until the 3rd save is half done, then kill hard
        if "PAUSED" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = [p.name for p in (killed / "checkpoints").iterdir()]
    assert any(n.startswith(".tmp-") for n in names)  # the interrupted save...
    path, state = latest_checkpoint(killed)  # ...is never picked
    assert state.step == 8 and not state.stage_done

    code, _, err = run_cli(args(tiny_bert, killed, "--resume"), capsys)
    assert code == 0, err
    a, b = final_weights(full), final_weights(killed)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert (killed / "metrics.json").read_text().count('"accuracy"') >= 1


@pytest.mark.cli
def test_resume_without_checkpoint(tiny_bert, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(args(tiny_bert, tmp_path / "empty", "--resume"), capsys)
    assert code == 2 and "no checkpoint" in err


def test_corrupt_checkpoint_is_reported(tmp_path):
    bad = tmp_path / "checkpoints" / "stage0-step0000004"
    bad.mkdir(parents=True)
    (bad / "alembert_state.json").write_text("{not json")
    with pytest.raises(AlembertError, match="corrupt"):
        latest_checkpoint(tmp_path)


@pytest.mark.cli
def test_nan_loss_stops_naming_step_and_term_and_keeps_the_checkpoint(tiny_bert, tmp_path, capsys, monkeypatch):
    import torch

    import alembert.terms.logits as module  # the kd term calls kd_loss

    calls = {"n": 0}
    real_kd = module.kd_loss

    def kd_then_nan(*a, **kw):  # finite for five steps, then NaN
        calls["n"] += 1
        value = real_kd(*a, **kw)
        return value * torch.nan if calls["n"] == 6 else value

    monkeypatch.setattr(module, "kd_loss", kd_then_nan)
    out = tmp_path / "nan"
    code, _, err = run_cli(
        [
            "distill",
            "--transfer",
            "none",
            "--teacher",
            tiny_bert,
            "--recipe",
            "kd",
            "--task",
            "sst2",
            "--student-layers",
            "0",
            "--no-cache-teacher",
            "--max-train-samples",
            64,
            "--max-eval-samples",
            8,
            "--epochs",
            1,
            "--batch-size",
            8,
            "--save-every",
            4,
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 2 and "at step 6" in err and "kd" in err and "checkpoint is kept" in err
    assert err.count("error:") == 1 and "Traceback" not in err
    path, state = latest_checkpoint(out)
    assert state.step == 4 and (path / "model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # no half-trained model in the output


def _finished(tiny_bert, out, train, capsys, *extra):
    argv = [
        *["finetune", "--model", tiny_bert, "--train-file", train, "--dev-file", train, "--max-length", 16],
        *["--batch-size", 8, "--epochs", 1, "--save-every", 2, "--lr", 1e-3, "--output", out, *extra],
    ]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    return argv


def _rows(path: Path, word: str) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{word} number {i}\t{i % 2}\n" for i in range(24)))
    return path


@pytest.mark.cli
def test_resume_refuses_another_config_and_force_records_it(tiny_bert, tmp_path, capsys):
    """A resume with another lr and seed is one line naming both fields (nothing changes on disk);
    --resume-force continues and metrics.json says what changed."""
    out, train = tmp_path / "run", _rows(tmp_path / "train.tsv", "text")
    argv = _finished(tiny_bert, out, train, capsys)
    before = (out / "metrics.json").read_bytes()
    changed = [*argv[:-2], "--lr", 3e-4, "--seed", 7, "--output", out, "--resume"]
    code, _, err = run_cli(changed, capsys)
    assert code == 2 and [ln for ln in err.splitlines() if not ln.startswith("note: ")] == [err.splitlines()[-1]], err
    assert "train.lr: 0.001 -> 0.0003" in err and "train.seed: 42 -> 7" in err and "--resume-force" in err
    assert (out / "metrics.json").read_bytes() == before
    code, _, err = run_cli([*changed, "--resume-force"], capsys)
    assert code == 0, err
    forced = json.loads((out / "metrics.json").read_text())["details"]["resume_forced"]
    assert forced == ["train.lr: 0.001 -> 0.0003", "train.seed: 42 -> 7"]
    code, _, err = run_cli([*argv, "--resume", "--threads", 1], capsys)  # threads change how, not what: allowed
    assert code == 0, err


@pytest.mark.cli
def test_resume_refuses_a_training_file_edited_since(tiny_bert, tmp_path, capsys):
    out, train = tmp_path / "run", _rows(tmp_path / "train.tsv", "text")
    argv = _finished(tiny_bert, out, train, capsys)
    _rows(train, "other")  # same rows, other words
    code, _, err = run_cli([*argv, "--resume"], capsys)
    assert code == 2 and "training data differs" in err and "train_hash" in err, err


@pytest.mark.cli
def test_a_two_stage_recipe_resumed_in_its_second_stage_matches_uninterrupted(tiny_teacher, tmp_path, capsys):
    """TinyBERT's two stages (layer-wise with projections, then prediction): a checkpoint of stage 2 holds
    stage 2's module and optimiser alone, and a resume from the middle of stage 2 ends on the same weights.
    (Before, the accelerator kept stage 1's objects too: the checkpoint's model.safetensors and optimizer.bin
    were stage 1's, and the resume loaded them into stage 2.)"""
    out = tmp_path / "run"
    argv = [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        tiny_teacher,
        "--recipe",
        "tinybert",
        "--task",
        "sst2",
        "--student-layers",
        "0,2",
    ]
    argv += ["--max-train-samples", 64, "--max-eval-samples", 16, "--batch-size", 16, "--max-steps", 4]
    argv += ["--lr", 1e-3, "--save-every", 2, "--keep-checkpoints", 10, "--output", out]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    last = list_checkpoints(out)[-1]
    assert last.name == "stage1-step0000004" and sorted(p.name for p in last.glob("model*")) == ["model.safetensors"]
    before = load_file(str(last / "model.safetensors"))
    (last.parent / "stage1-step0000004").rename(tmp_path / "moved")  # as if killed during stage 2's step 3
    code, _, err = run_cli([*argv, "--resume"], capsys)
    assert code == 0, err
    after = load_file(str(last / "model.safetensors"))
    assert before.keys() == after.keys()
    assert max((before[k] - after[k]).abs().max().item() for k in before) <= 1e-6
