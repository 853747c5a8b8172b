"""One entry point from a ``DataConfig`` to its task and (train, dev) datasets."""

from __future__ import annotations

import sys

from datasets import ClassLabel, Dataset

from alembert.config.schema import DataConfig
from alembert.data.glue import TaskSpec, custom_task, get_task
from alembert.data.readers import default_data_dir, load_data_file, load_glue_split
from alembert.errors import AlembertError


def model_labels(config) -> list[str] | None | bool:
    """A saved classifier's own labels (``id2label`` in id order); None for a regression head;
    False when ``config`` is no task model (a base encoder: no labels of its own)."""
    from alembert.models.load import is_task_model

    if config is None or not is_task_model(config):
        return False
    if config.problem_type == "regression" or config.num_labels == 1:
        return None
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def resolve_task(
    cfg: DataConfig, model_config=None, what: str = "the model"
) -> TaskSpec:  # model_config: a config, or a function returning one
    """The task of a command. A GLUE task by name. Your own data (``--task custom``, or no
    ``--task`` with ``--train-file``/``--dev-file``): classification over ``--labels``, else over
    the saved model's own labels (evaluate, bench, predict, a distillation teacher), else over the
    labels inferred from the training file (said on stderr); regression when that file's label
    column holds non-integer numbers. Without a task and without files: sst2, as before."""
    name = cfg.task
    if name is None and cfg.train_file is None and cfg.dev_file is None:
        name = "sst2"
    if name is not None and name.strip().lower() != "custom":
        return get_task(name)
    saved = model_labels(model_config() if callable(model_config) else model_config)
    if cfg.labels:
        if saved not in (False, None) and len(saved) != len(cfg.labels):
            raise AlembertError(
                f"--labels {','.join(cfg.labels)}: {len(cfg.labels)} classes, but {what} has {len(saved)} "
                f"({', '.join(saved)}); pass its labels or a model trained on these"
            )
        names, source = list(cfg.labels), "--labels"
    elif saved is not False:
        names, source = saved, f"the labels saved in {what}"
    else:
        file = cfg.train_file or cfg.dev_file
        if file is None:
            raise AlembertError(
                "--task custom: pass your data with --train-file/--dev-file (and --labels a,b,c to fix the class order)"
            )
        ds = load_data_file(
            file,
            None,
            text_column=cfg.text_column,
            text_pair_column=cfg.text_pair_column,
            label_column=cfg.label_column,
        )
        feature = ds.features["label"]
        names = list(feature.names) if isinstance(feature, ClassLabel) else None
        source = f"inferred from {file}; pass --labels to fix the order"
    about = "regression (one score)" if names is None else f"{len(names)} classes: {', '.join(names)}"
    print(f"note: your own data: {about} ({source})", file=sys.stderr)
    return custom_task(names, is_pair=cfg.text_pair_column is not None)


def load_split(cfg: DataConfig, task: TaskSpec, split: str) -> Dataset:
    """``split`` is "train" or "dev": a user file when given, else the GLUE file of the task."""
    path = cfg.train_file if split == "train" else cfg.dev_file
    if path is not None:
        ds = load_data_file(
            path,
            task,
            text_column=cfg.text_column,
            text_pair_column=cfg.text_pair_column,
            label_column=cfg.label_column,
        )
    else:
        ds = load_glue_split(task, cfg.data_dir or default_data_dir(), split)
    limit = cfg.max_train_samples if split == "train" else cfg.max_eval_samples
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    return ds
