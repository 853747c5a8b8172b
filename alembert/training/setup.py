"""Set-up shared by every training command: threads, seed, accelerator, task data."""

from __future__ import annotations

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed

from alembert.config.schema import DataConfig, TrainConfig
from alembert.data.load import load_split
from alembert.data.tasks import TaskSpec
from alembert.data.tokenize import tokenize_dataset
from alembert.errors import AlembertError


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=True),  # batch_size is the global batch
    )
    set_seed(cfg.seed)
    return accelerator


def task_data(cfg: DataConfig, task: TaskSpec, tokenizer):
    """Tokenised (train, dev) for a task; errors if either is empty."""
    out = []
    for split in ("train", "dev"):
        ds = load_split(cfg, task, split)
        if len(ds) == 0:
            raise AlembertError(f"the {split} set of task {task.name} is empty; check --{split}-file or --data-dir")
        out.append(tokenize_dataset(ds, tokenizer, cfg.max_length))
    return tuple(out)
