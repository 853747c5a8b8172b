"""--report-to sends the logged scalars through Accelerate's trackers."""

import json

import pytest
from accelerate.tracking import GeneralTracker, register_tracker_class
from conftest import run_cli

pytestmark = pytest.mark.cli


class MemoryTracker(GeneralTracker):
    name = "memory"
    requires_logging_directory = False
    logged: list = []
    config: dict = {}

    def __init__(self, run_name, **kwargs):
        super().__init__()
        self.run_name = run_name

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        MemoryTracker.config = dict(values)

    def log(self, values, step=None, **kwargs):
        MemoryTracker.logged.append((step, dict(values)))


def test_report_to_a_tracker(tiny_bert, tmp_path, capsys):
    register_tracker_class(MemoryTracker)
    MemoryTracker.logged.clear()
    out = tmp_path / "run"
    code, _, err = run_cli(
        [
            "finetune",
            "--model",
            tiny_bert,
            "--task",
            "sst2",
            "--max-train-samples",
            32,
            "--max-eval-samples",
            8,
            "--epochs",
            1,
            "--batch-size",
            8,
            "--log-every",
            1,
            "--report-to",
            "memory",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    sent = {step: values for step, values in MemoryTracker.logged if "train/loss" in values}
    assert len(sent) == len(steps) == 4
    assert all(abs(sent[r["step"]]["train/loss"] - r["loss"]) < 1e-9 for r in steps)
    assert any("eval/accuracy" in values for _, values in MemoryTracker.logged)
    assert MemoryTracker.config["train.lr"] == 5e-5 and MemoryTracker.config["data.task"] == "sst2"


def test_unknown_tracker_is_refused(tiny_bert, tmp_path, capsys):
    code, _, err = run_cli(
        ["finetune", "--model", tiny_bert, "--report-to", "no-such-tracker", "--output", tmp_path / "o"], capsys
    )
    assert code == 2 and "--report-to" in err
