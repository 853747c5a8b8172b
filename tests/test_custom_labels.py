"""Issue 20, item 15: your own data with your own labels works in every command.

A 4-class CSV with string labels goes finetune -> distill -> export -> evaluate -> bench ->
predict without ``--task``: the labels are inferred from the training file (and said), saved in
the model, and every later command uses the model's own labels. A float label column is a
regression; ``--labels`` fixes the class order.
"""

import json

import pytest
from conftest import run_cli

pytestmark = pytest.mark.cli

LABELS = ["anger", "joy", "fear", "calm"]


def four_class(path, n=48):
    rows = [f"this is example {i} about {LABELS[i % 4]},{LABELS[i % 4]}" for i in range(n)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def test_four_classes_through_every_command(tiny_bert, tmp_path, capsys):
    train, dev = four_class(tmp_path / "train.csv"), four_class(tmp_path / "dev.csv", 16)
    data = ["--train-file", train, "--dev-file", dev]
    teacher, student, onnx = tmp_path / "teacher", tmp_path / "student", tmp_path / "onnx"

    code, out, err = run_cli(
        ["finetune", "--model", tiny_bert, *data, "--epochs", 1, "--batch-size", 8, "--output", teacher], capsys
    )
    assert code == 0, err
    assert "4 classes: anger, calm, fear, joy" in err and "inferred from" in err  # stated, sorted
    config = json.loads((teacher / "config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(LABELS)

    code, _, err = run_cli(
        [
            "distill",
            "--transfer",
            "none",
            "--teacher",
            teacher,
            *data,
            "--recipe",
            "kd",
            "--student-layers",
            "0",
            "--epochs",
            1,
            "--batch-size",
            8,
            "--output",
            student,
        ],
        capsys,
    )
    assert code == 0, err
    assert "the labels saved in teacher" in err
    assert json.loads((student / "config.json").read_text())["id2label"] == config["id2label"]

    code, _, err = run_cli(["export", student, "--onnx", "--output", onnx], capsys)
    assert code == 0, err

    accuracy = []
    for model in (student, onnx):
        code, out, err = run_cli(["evaluate", model, "--dev-file", dev, "--output", tmp_path / "eval"], capsys)
        assert code == 0, err
        accuracy.append(json.loads((tmp_path / "eval" / "eval_results.json").read_text())["accuracy"])
    assert accuracy[0] == accuracy[1]  # the export keeps the labels and scores what the student scores

    code, out, err = run_cli(
        [
            "bench",
            teacher,
            student,
            onnx,
            "--dev-file",
            dev,
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
    assert json.loads((tmp_path / "bench" / "bench.json").read_text())["task"] == "custom"

    code, out, err = run_cli(["predict", onnx, "I am furious", "what a lovely day"], capsys)
    assert code == 0, err
    assert out.count("label: ") == 2 and all(name in out for name in LABELS)


def test_labels_flag_fixes_the_order_and_task_custom_is_accepted(tiny_bert, tmp_path, capsys):
    train = four_class(tmp_path / "train.csv", 16)
    code, _, err = run_cli(
        [
            "finetune",
            "--model",
            tiny_bert,
            "--task",
            "custom",
            "--labels",
            ",".join(LABELS),
            "--train-file",
            train,
            "--dev-file",
            train,
            "--epochs",
            1,
            "--batch-size",
            8,
            "--output",
            tmp_path / "m",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "config.json").read_text())["id2label"] == {
        str(i): n for i, n in enumerate(LABELS)
    }


def test_unknown_label_names_the_labels_flag(tiny_bert, tmp_path, capsys):
    train = four_class(tmp_path / "train.csv", 8)
    code, _, err = run_cli(
        [
            "finetune",
            "--model",
            tiny_bert,
            "--labels",
            "anger,joy",
            "--train-file",
            train,
            "--dev-file",
            train,
            "--output",
            tmp_path / "m",
        ],
        capsys,
    )
    assert code == 2 and "add it to --labels" in err and "--label-names" not in err, err


def test_float_label_column_is_regression(tiny_bert, tmp_path, capsys):
    f = tmp_path / "scores.csv"
    f.write_text("text,label\n" + "\n".join(f"example {i},{i / 7:.3f}" for i in range(16)) + "\n")
    code, _, err = run_cli(
        [
            "finetune",
            "--model",
            tiny_bert,
            "--train-file",
            f,
            "--dev-file",
            f,
            "--epochs",
            1,
            "--batch-size",
            8,
            "--output",
            tmp_path / "m",
        ],
        capsys,
    )
    assert code == 0, err
    assert "regression" in err
    assert json.loads((tmp_path / "m" / "config.json").read_text())["problem_type"] == "regression"
    assert "pearson" in json.loads((tmp_path / "m" / "metrics.json").read_text())["dev"]
