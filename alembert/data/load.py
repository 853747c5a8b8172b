"""One entry point from a ``DataConfig`` to (train, dev) datasets."""

from __future__ import annotations

from datasets import Dataset

from alembert.config.schema import DataConfig
from alembert.data.readers import default_data_dir, load_data_file, load_glue_split
from alembert.data.tasks import TaskSpec


def load_split(cfg: DataConfig, task: TaskSpec, split: str) -> Dataset:
    """``split`` is "train" or "dev": a user file when given, else the GLUE file of the task."""
    path = cfg.train_file if split == "train" else cfg.dev_file
    if path is not None:
        ds = load_data_file(
            path, task, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column, label_column=cfg.label_column
        )
    else:
        ds = load_glue_split(task, cfg.data_dir or default_data_dir(), split)
    limit = cfg.max_train_samples if split == "train" else cfg.max_eval_samples
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    return ds
