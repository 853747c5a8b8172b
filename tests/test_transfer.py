"""Transfer text by default on small labelled sets (alembert.data.transfer): the threshold, the
sources and their order, augmentation (seeded, cached, never a dev text), and regression rows."""

import json
import math

import pytest
import torch
from conftest import run_cli
from datasets import Dataset

from alembert.config.schema import DataConfig
from alembert.data.glue import get_task
from alembert.data.load import load_split
from alembert.data.transfer import MAX_FACTOR, build_transfer, wanted_rows, with_transfer
from alembert.errors import AlembertError
from alembert.losses import hard_label_loss

SST2 = get_task("sst2")


@pytest.mark.parametrize(
    ("flags", "labelled", "wanted"),
    [
        ({}, 300, 6_000),  # 20x: the factor binds
        ({}, 5_000, 15_000),  # filled up to 20,000
        ({}, 20_000, 0),  # large enough
        ({"transfer_fill": 1_000}, 30, 600),
        ({"transfer": "none"}, 30, 0),
        ({"transfer_size": 7}, 50_000, 7),  # asked for, whatever the size
    ],
)
def test_how_many_transfer_rows_a_set_gets(flags, labelled, wanted):
    n, why = wanted_rows(DataConfig(task="sst2", **flags), labelled)
    assert n == wanted and why


def _sst2(**kw):
    cfg = DataConfig(task="sst2", max_eval_samples=40, **kw)
    return cfg, load_split(cfg, SST2, "train"), load_split(cfg, SST2, "dev")


def test_the_other_training_rows_come_first(tiny_bert):
    cfg, train, dev = _sst2(max_train_samples=10)
    ds, plan = build_transfer(cfg, SST2, train, dev, tiny_bert)
    assert plan.wanted == MAX_FACTOR * 10 and plan.rows == len(ds) == 200 - plan.dropped_dev
    assert plan.sources == {"other training texts": len(ds)} and plan.augment is None
    full = load_split(DataConfig(task="sst2"), SST2, "train")
    assert ds["text_a"][:5] == full["text_a"][10:15]  # the rows --max-train-samples left out, in order
    assert ds.column_names == ["text_a"]  # no labels: the teacher's outputs are the only targets
    assert "other training texts" in plan.line() and "200" in plan.line().replace(",", "")


def test_a_file_is_taken_whole_then_filled_and_capped(tiny_bert, tmp_path):
    path = tmp_path / "unlabelled.txt"
    path.write_text("\n".join(f"an unlabelled line {i}" for i in range(30)))
    cfg, train, dev = _sst2(max_train_samples=4, transfer=str(path))
    ds, plan = build_transfer(cfg, SST2, train, dev, tiny_bert)
    assert plan.sources == {f"from {path}": 30, "other training texts": 50}  # 80 wanted: the file, then the rest
    assert ds["text_a"][:2] == ["an unlabelled line 0", "an unlabelled line 1"]
    cfg, train, dev = _sst2(max_train_samples=4, transfer=str(path), max_transfer_samples=33)
    ds, plan = build_transfer(cfg, SST2, train, dev, tiny_bert)
    assert plan.sources == {f"from {path}": 30, "other training texts": 3}  # the first N, in source order
    with pytest.raises(AlembertError, match="needs a transfer set"):
        build_transfer(DataConfig(task="sst2", transfer="none", max_transfer_samples=5), SST2, train, dev, tiny_bert)
    with pytest.raises(AlembertError, match="not found"):
        build_transfer(DataConfig(task="sst2", transfer=str(tmp_path / "nope.txt")), SST2, train, dev, tiny_bert)


TRAIN = [
    "a quietly moving film about two brothers and the sea",
    "the plot drags and the jokes fall flat every single time",
    "good",  # one word, also a dev text: its unchanged copies must not reach training
    "an uneven but often funny look at life in a small town",
]


def test_augmented_copies_are_seeded_cached_and_never_a_dev_text(tiny_bert, tmp_path):
    train_file, dev_file = _write(tmp_path, "train", TRAIN), _write(tmp_path, "dev", ["good", "bad"])
    cfg = DataConfig(task="sst2", train_file=train_file, dev_file=dev_file)
    train, dev = load_split(cfg, SST2, "train"), load_split(cfg, SST2, "dev")
    ds, plan = build_transfer(cfg, SST2, train, dev, tiny_bert, seed=1)
    assert plan.wanted == MAX_FACTOR * len(TRAIN) and plan.augment is not None
    assert plan.sources == {"augmented copies of the labelled texts": len(ds)}
    assert plan.dropped_dev > 0 and len(ds) == plan.wanted - plan.dropped_dev
    assert not {" ".join(t.split()).lower() for t in ds["text_a"]} & {"good", "bad"}
    assert ds["text_a"][0] != TRAIN[0] or ds["text_a"][1] != TRAIN[1]  # copies, mostly changed (p=0.4)
    again, _ = build_transfer(cfg, SST2, train, dev, tiny_bert, seed=1)  # read back from the cache
    assert again["text_a"] == ds["text_a"]
    other, _ = build_transfer(cfg, SST2, train, dev, tiny_bert, seed=2)
    assert other["text_a"] != ds["text_a"]


def _write(folder, name, texts):
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"sentence": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    return path


def test_regression_transfer_rows_are_nan_and_the_gold_loss_skips_them():
    train = Dataset.from_dict({"text_a": ["x", "y"], "label": [1.5, 4.0]})
    rows = with_transfer(train, Dataset.from_dict({"text_a": ["z"]}))
    assert rows["label"][:2] == [1.5, 4.0] and math.isnan(rows["label"][2])
    preds = torch.tensor([[1.0], [5.0], [100.0]], requires_grad=True)
    loss = hard_label_loss(preds, torch.tensor(rows["label"]))
    assert loss.item() == pytest.approx(((1.0 - 1.5) ** 2 + 1.0) / 2)
    loss.backward()
    assert preds.grad[2].item() == 0.0
    only = torch.tensor([[3.0]], requires_grad=True)
    zero = hard_label_loss(only, torch.tensor([math.nan]))
    zero.backward()  # still in the graph: a step on transfer rows only runs
    assert zero.item() == 0.0 and only.grad.item() == 0.0
    classes = with_transfer(Dataset.from_dict({"text_a": ["x"], "label": [1]}), Dataset.from_dict({"text_a": ["z"]}))
    assert classes["label"] == [1, -100]


@pytest.mark.cli
def test_the_dry_run_says_how_much_transfer_text_and_why(tiny_teacher, tmp_path, capsys):
    base = ["distill", "--teacher", tiny_teacher, "--task", "sst2", "--max-train-samples", 12]
    base += ["--max-eval-samples", 8, "--batch-size", 8, "--output", tmp_path / "o", "--dry-run"]
    code, out, err = run_cli(base, capsys)
    assert code == 0, err
    assert "transfer set: 240 texts labelled by the teacher (240 other training texts)" in out + err
    assert "train examples 252" in out + err
    code, out, err = run_cli([*base, "--transfer", "none"], capsys)
    assert code == 0, err
    assert "transfer set: none (--transfer none)" in out + err and "train examples 12" in out + err
    code, out, err = run_cli([*base, "--recipe", "ce"], capsys)
    assert code == 0, err
    assert "transfer set: none (recipe ce reads no teacher output)" in out + err
    assert not (tmp_path / "o").exists()
