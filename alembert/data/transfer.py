"""Transfer sets: extra unlabelled text on which the teacher's outputs are the only targets.

``transfer`` is a file (``.txt``: one text per line; ``.csv``/``.tsv``/``.jsonl``: the
task's text columns, labels ignored) or ``train-rest``: the task's training examples
beyond ``max_train_samples``, labels dropped. Transfer rows get the label -100, which
the hard-label loss ignores, so they contribute through the teacher only.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, Value, concatenate_datasets

from alembert.config.schema import DataConfig
from alembert.data.glue import TaskSpec
from alembert.data.readers import default_data_dir, load_data_file, load_glue_split
from alembert.errors import AlembertError
from alembert.losses.ce import IGNORE_INDEX


def load_transfer(cfg: DataConfig, task: TaskSpec) -> Dataset | None:
    """The transfer set's texts (text_a, text_b for pair tasks; the first ``max_transfer_samples``), or None."""
    if not cfg.transfer:
        if cfg.max_transfer_samples is not None:
            raise AlembertError(
                "--max-transfer-samples needs a transfer set: pass --transfer FILE or --transfer train-rest"
            )
        return None
    ds = _read_transfer(cfg, task)
    if cfg.max_transfer_samples is not None:
        ds = ds.select(range(min(cfg.max_transfer_samples, len(ds))))
    return ds


def _read_transfer(cfg: DataConfig, task: TaskSpec) -> Dataset:
    if task.is_regression:
        raise AlembertError(
            f"a transfer set needs a classification task; {task.name} is a regression task: drop --transfer"
        )
    if cfg.transfer == "train-rest":
        if cfg.max_train_samples is None:
            raise AlembertError(
                "--transfer train-rest uses the training examples beyond --max-train-samples; "
                "pass --max-train-samples N"
            )
        full = (
            load_data_file(cfg.train_file, task)
            if cfg.train_file
            else load_glue_split(task, cfg.data_dir or default_data_dir(), "train")
        )
        rest = full.select(range(min(cfg.max_train_samples, len(full)), len(full)))
        return rest.remove_columns("label")
    path = Path(cfg.transfer)
    if path.suffix == ".txt":
        if not path.is_file():
            raise AlembertError(f"transfer file {path} not found; pass an existing file or 'train-rest' to --transfer")
        lines = [
            line.strip() for line in path.read_text(encoding="utf-8", errors="strict").splitlines() if line.strip()
        ]
        if not lines:
            raise AlembertError(f"transfer file {path} is empty; give one text per line")
        if task.is_pair:
            raise AlembertError(
                f"task {task.name} takes text pairs; "
                "a .txt transfer file has single texts: use a TSV/CSV/JSONL with both columns"
            )
        return Dataset.from_dict({"text_a": lines})
    ds = load_data_file(path, task, cfg.text_column, cfg.text_pair_column, allow_unlabelled=True)
    return ds.remove_columns("label") if "label" in ds.column_names else ds


def with_transfer(train: Dataset, transfer: Dataset | None) -> Dataset:
    """Labelled training rows followed by transfer rows labelled -100."""
    if transfer is None:
        return train
    train = train.cast_column("label", Value("int64"))
    transfer = transfer.add_column("label", [IGNORE_INDEX] * len(transfer)).cast_column("label", Value("int64"))
    return concatenate_datasets([train, transfer.select_columns(train.column_names)])
