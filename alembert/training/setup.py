"""Set-up shared by every training command: threads, seed, accelerator, the autocast dtype."""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import set_seed

from alembert.config.schema import TrainConfig
from alembert.errors import AlembertError

#: mixed-precision name -> the autocast dtype a teacher cache is computed at (its outputs stored as float32)
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_accelerator(cfg: TrainConfig, find_unused_parameters: bool = False) -> Accelerator:
    """``find_unused_parameters``: set it when some trained parameters get no gradient in a step
    (a distillation stage with layer losses only never reaches the pooler and classifier);
    DDP (several processes) then fails unless told so. It costs a graph traversal per step."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.grad_accum,
            dataloader_config=DataLoaderConfiguration(split_batches=True),  # batch_size is the global batch
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
            if find_unused_parameters
            else None,
            log_with=cfg.report_to or None,
        )
    except ValueError as exc:
        if not cfg.report_to or "logging" not in str(exc):
            raise
        raise AlembertError(
            f"--report-to {','.join(cfg.report_to)}: unknown tracker; "
            "use tensorboard, wandb, mlflow, comet_ml, aim, clearml, dvclive"
        ) from None
    if cfg.report_to and not accelerator.log_with:
        raise AlembertError(
            f"--report-to {','.join(cfg.report_to)}: tracker not available here; "
            "install its package (e.g. pip install tensorboard) or drop the flag"
        )
    n, launched = accelerator.num_processes, int(os.environ.get("WORLD_SIZE", "1"))
    if launched > n:  # torchrun started several processes but each runs alone: all would train and write the same files
        raise AlembertError(
            f"launched as {launched} processes but Accelerate runs each alone (no GPU found?); "
            "for several CPU processes set ACCELERATE_USE_CPU=1 in the environment of accelerate launch"
        )
    if cfg.batch_size % n:  # split_batches cuts every batch into n equal parts
        raise AlembertError(
            f"--batch-size {cfg.batch_size} is the global batch and must be a multiple of the {n} processes; "
            f"use e.g. --batch-size {-(-cfg.batch_size // n) * n}"
        )
    set_seed(cfg.seed)
    return accelerator
