"""Two CPU processes under ``accelerate launch`` (DDP, gloo) end where one process ends.

A tiny distillation (pkd-skip: KD + CE + Patient-KD through the teacher cache) runs once
with one process and once with two, the same global batch of 8 (split 4 + 4), both
through ``accelerate launch`` in a subprocess. The teacher has dropout 0, so the runs
use no randomness after the (seeded, identical) set-up and must agree to float error.

On a machine without GPUs ``accelerate launch --cpu --num_processes 2`` starts ONE
process (its simple launcher); two CPU processes need torchrun (``--multi_gpu``) with
``ACCELERATE_USE_CPU=1`` in the environment, which makes each process a gloo rank.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import save_tiny
from safetensors.torch import load_file

from alembert.training.checkpoint import list_checkpoints

pytestmark = pytest.mark.cli

REPO = Path(__file__).resolve().parents[1]
STEPS = 4  # 32 examples / global batch 8, one epoch


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, bert_tokenizer):
    path = save_tiny(tmp_path_factory.mktemp("ddp-teacher"), bert_tokenizer, layers=4, hidden=32, heads=2, seed=3)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


def launch(
    processes: int, teacher: Path, out: Path, cache: Path, recipe: str = "pkd-skip", samples: int = 32
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ACCELERATE_USE_CPU": "1",
        "ALEMBERT_CACHE": str(cache),
        "ALEMBERT_DATA": os.environ["ALEMBERT_DATA"],
    }
    if processes > 1:
        how = ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", "0"]
    else:
        how = ["--cpu", "--num_processes", "1"]
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *how,
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "alembert.cli.main",
        "distill",
        "--transfer",
        "none",
        "--teacher",
        teacher,
        "--recipe",
        recipe,
        "--task",
        "sst2",
        "--max-train-samples",
        samples,
        "--max-eval-samples",
        16,
        "--batch-size",
        8,
        "--epochs",
        1,
        "--lr",
        1e-3,
        "--log-every",
        1,
        "--save-every",
        STEPS,
        "--output",
        out,
    ]
    return subprocess.run([str(c) for c in cmd], env=env, cwd=REPO, capture_output=True, text=True, timeout=240)


def test_two_cpu_processes_match_one(teacher, tmp_path):
    # Two processes first, on an empty cache: the tokenised data and the teacher cache are
    # built by one process while the other waits (two writers used to collide on them).
    cache = tmp_path / "cache"
    runs = {}
    for n in (2, 1):
        out = tmp_path / f"np{n}"
        proc = launch(n, teacher, out, cache)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[n] = out

    metrics = {n: json.loads((out / "metrics.json").read_text()) for n, out in runs.items()}
    assert metrics[1]["processes"] == 1 and metrics[2]["processes"] == 2  # really distributed, not two lone processes
    assert metrics[1]["dev"] == metrics[2]["dev"]
    assert metrics[1]["stages"][0]["steps"] == metrics[2]["stages"][0]["steps"] == STEPS

    # The saved model is the best by dev metric; the step-STEPS checkpoint holds the final weights.
    final = {}
    for n, out in runs.items():
        (last,) = [p for p in list_checkpoints(out) if p.name == f"stage0-step{STEPS:07d}"]
        final[n] = load_file(str(last / "model.safetensors"))
    assert final[1].keys() == final[2].keys()
    diff = max((final[1][k] - final[2][k]).abs().max().item() for k in final[1])
    assert diff <= 1e-5, diff

    # Only the main process writes: one log line per step and per evaluation, no stray files.
    for n, out in runs.items():
        records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        steps = [r["step"] for r in records if "loss" in r]
        evals = [r["step"] for r in records if "eval" in r]
        assert steps == list(range(1, STEPS + 1)), (n, steps)
        assert evals == [STEPS], (n, evals)
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")], n  # no temporary files left behind
    # Logged training losses are reduced over the processes: the same as with one process.
    logged = {
        n: [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "loss" in r]
        for n, out in runs.items()
    }
    for a, b in zip(logged[1], logged[2], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)


def test_layer_loss_stage_runs_under_ddp(teacher, tmp_path):
    """TinyBERT's first stage (hidden + attention losses) never reaches the pooler and classifier:
    DDP must be told to expect unused parameters, or it stops at the second step."""
    out = tmp_path / "tinybert"
    proc = launch(2, teacher, out, tmp_path / "cache", recipe="tinybert", samples=16)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and [s["steps"] for s in metrics["stages"]] == [2, 2]


def launch_command(processes: int, args: list, cache: Path) -> subprocess.CompletedProcess:
    """Any alembert command under ``accelerate launch`` with ``processes`` CPU ranks."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ACCELERATE_USE_CPU": "1",
        "ALEMBERT_CACHE": str(cache),
        "ALEMBERT_DATA": os.environ["ALEMBERT_DATA"],
    }
    how = ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", "0"]
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *how,
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "alembert.cli.main",
        *args,
    ]
    return subprocess.run([str(c) for c in cmd], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def written_caches(proc: subprocess.CompletedProcess) -> list[str]:
    """The cache writers' lines (alembert.data.tokenize.cache_write_note) of every process."""
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("alembert: cache written ")]


def test_qa_tinybert_under_two_processes_one_cache_writer(teacher, tmp_path):
    """The QA windows are tokenised by one process (the other waits, then reads them), and a
    tinybert recipe (its first stage never reaches the span head) runs under DDP."""
    from alembert.cli.main import main

    qa = [
        "--task",
        "squad",
        "--max-train-samples",
        8,
        "--max-eval-samples",
        8,
        "--max-length",
        128,
        "--batch-size",
        4,
        "--epochs",
        1,
    ]
    qa_teacher = tmp_path / "qa-teacher"
    assert main([str(a) for a in ["finetune", "--model", teacher, *qa, "--output", qa_teacher]]) == 0
    out = tmp_path / "qa-tinybert"
    proc = launch_command(
        2,
        ["distill", "--teacher", qa_teacher, "--recipe", "tinybert", *qa, "--student-layers", "0,2", "--output", out],
        tmp_path / "cache",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and len(metrics["stages"]) == 2
    lines = written_caches(proc)
    assert (
        len([x for x in lines if "SQuAD (train)" in x]) == 1 and len([x for x in lines if "SQuAD (eval)" in x]) == 1
    ), lines
    assert all(x.endswith("(process 0)") for x in lines), lines


def test_corpus_cache_has_one_writer_under_two_processes(teacher, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"Sentence number {i} is here, and it is a short one." for i in range(200)), encoding="utf-8"
    )
    out = tmp_path / "general"
    proc = launch_command(
        2,
        [
            "distill-general",
            "--teacher",
            teacher,
            "--recipe",
            "cosine-hidden",
            "--corpus",
            corpus,
            "--max-length",
            32,
            "--heldout",
            8,
            "--batch-size",
            8,
            "--max-steps",
            2,
            "--student-layers",
            "0,2",
            "--output",
            out,
        ],
        tmp_path / "cache",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in written_caches(proc) if "packed sentences" in x]
    assert len(lines) == 1 and lines[0].endswith("(process 0)"), written_caches(proc)


def test_distillation_trainer_under_two_processes(teacher, tmp_path):
    """DistillationTrainer in a user's script under ``accelerate launch`` with two CPU processes
    (gloo): the teacher cache built by one process, both ranks train, the student is saved."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ACCELERATE_USE_CPU": "1",
        "ALEMBERT_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "0",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(REPO / "tests" / "helpers" / "trainer_ddp.py"),
        str(teacher),
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "ddp_result.json").read_text())
    assert result["world_size"] == 2 and result["steps"] == 3 and result["finite"]
    assert {"kd", "ce", "pkd"} <= set(result["terms"]), result["terms"]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    entries = list((tmp_path / "cache" / "teacher").iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file(), (
        entries
    )  # one complete cache, no leftover temporary
