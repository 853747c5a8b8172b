"""End to end: finetune a tiny model on real SST-2 rows, reload it the standard ways, evaluate."""

import json

import pytest
import torch
from conftest import run_cli
from transformers import AutoModelForSequenceClassification, pipeline

pytestmark = pytest.mark.cli


def test_finetune_save_reload_evaluate(tiny_bert, tmp_path, capsys):
    out = tmp_path / "teacher"
    code, stdout, err = run_cli(
        [
            "finetune",
            "--model",
            tiny_bert,
            "--task",
            "sst2",
            "--max-train-samples",
            96,
            "--max-eval-samples",
            48,
            "--epochs",
            2,
            "--batch-size",
            16,
            "--log-every",
            2,
            "--eval-every",
            3,
            "--lr",
            1e-3,
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 96 and metrics["dev_examples"] == 48
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    best = [r["eval"] for r in log if "eval" in r and r["step"] == metrics["best_step"]]
    assert metrics["best_step"] > 0 and metrics["dev"]["accuracy"] == best[-1]["accuracy"]  # the saved model's score
    assert any("loss" in r for r in log) and sum("eval" in r for r in log) >= 3
    assert (out / "model.safetensors").is_file() and (out / "finetune_config.yaml").is_file()

    # loads in standard transformers, with label names
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    clf = pipeline("text-classification", model=str(out), device=-1)
    assert clf("a gripping, funny film")[0]["label"] in {"negative", "positive"}

    # alembert evaluate reproduces the best dev figure kept at training time
    code, stdout, err = run_cli(["evaluate", out, "--task", "sst2", "--max-eval-samples", 48], capsys)
    assert code == 0, err
    assert abs(json.loads(stdout.strip().splitlines()[-1])["accuracy"] - metrics["dev"]["accuracy"]) < 1e-9


def test_regression_task_stsb(tiny_bert, tmp_path, capsys):
    out = tmp_path / "stsb"
    code, _, err = run_cli(
        [
            "finetune",
            "--model",
            tiny_bert,
            "--task",
            "stsb",
            "--max-train-samples",
            32,
            "--max-eval-samples",
            32,
            "--epochs",
            1,
            "--batch-size",
            16,
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["dev"]) == {"pearson", "spearman"}
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    assert model(torch.tensor([[101, 2000, 102]])).logits.shape == (1, 1)
