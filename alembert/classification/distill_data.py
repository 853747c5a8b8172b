"""Training and dev data of a distillation run: transfer set, one or two tokenisations."""

from __future__ import annotations

from alembert.config.schema import DataConfig
from alembert.data.glue import TaskSpec
from alembert.data.load import load_split
from alembert.data.tokenize import tokenize_dataset
from alembert.data.transfer import build_transfer, with_transfer
from alembert.data.two_tokenizers import TEACHER_PREFIX, tokenize_two
from alembert.errors import AlembertError


def distill_data(cfg: DataConfig, task: TaskSpec, teacher_tok, student_tok, two: bool, teacher: str, seed: int = 0):
    """(train, student dev, teacher dev, transfer plan), tokenised; the training set is the gold rows
    followed by the transfer set (:func:`alembert.data.transfer.build_transfer`, ``teacher``'s
    input embeddings for augmentation).

    With two tokenizers the training set carries the teacher's own ``teacher_*`` columns
    (the teacher gets one more token of room so pairs keep the same text on both sides).
    """
    raw = {split: load_split(cfg, task, split) for split in ("train", "dev")}
    for split, ds in raw.items():
        if len(ds) == 0:
            raise AlembertError(f"the {split} set of task {task.name} is empty; check --{split}-file or --data-dir")
    transfer, plan = build_transfer(cfg, task, raw["train"], raw["dev"], teacher, seed)
    train_raw = with_transfer(raw["train"], transfer)
    if not two:
        dev = tokenize_dataset(raw["dev"], teacher_tok, cfg.max_length)
        return tokenize_dataset(train_raw, teacher_tok, cfg.max_length), dev, dev, plan
    train = tokenize_two(train_raw, teacher_tok, student_tok, cfg.max_length, teacher_max_length=cfg.max_length + 1)
    return (
        train,
        tokenize_dataset(raw["dev"], student_tok, cfg.max_length),
        tokenize_dataset(raw["dev"], teacher_tok, cfg.max_length + 1),
        plan,
    )


def teacher_side(train):
    """The teacher's columns of a two-tokenizer training set under the usual names (for the teacher cache)."""
    cols = [c for c in train.column_names if c.startswith(TEACHER_PREFIX)]
    return train.select_columns([*cols, "length"]).rename_columns({c: c[len(TEACHER_PREFIX) :] for c in cols})
