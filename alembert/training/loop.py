"""The one training loop every command shares, on Hugging Face Accelerate.

``fit`` optimises a module whose ``forward(batch)`` returns ``(loss, terms)``:
the total loss and a dict of named loss terms for logging. Fine-tuning passes a
module that wraps the model's own loss; distillation passes one that holds the
student and its projections and composes the recipe's losses (the teacher is
kept outside the module so it is never wrapped or trained).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from alembert.config.schema import TrainConfig
from alembert.errors import AlembertError
from alembert.training.logger import RunLogger


@dataclass
class FitResult:
    best: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    last: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    train_seconds: float = 0.0
    samples: int = 0


def make_optimizer(module: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm weights (BERT's convention)."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def total_steps(loader_len: int, cfg: TrainConfig) -> int:
    per_epoch = max(1, loader_len // cfg.grad_accum)
    steps = math.ceil(per_epoch * cfg.epochs)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def fit(
    module: torch.nn.Module,
    loader,
    sampler,
    cfg: TrainConfig,
    accelerator: Accelerator,
    evaluate: Callable[[], dict[str, float]],
    main_metric: str,
    on_best: Callable[[dict[str, float], int], None],
    logger: RunLogger,
) -> FitResult:
    steps = total_steps(len(loader), cfg)
    optimizer = make_optimizer(module, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    module, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader, scheduler)
    eval_every = cfg.eval_every or max(1, len(loader) // cfg.grad_accum)
    result = FitResult()
    bar = tqdm(total=steps, desc="training", disable=not accelerator.is_main_process, dynamic_ncols=True)
    start = time.time()
    running: dict[str, float] = {}
    running_n = 0
    epoch = 0
    module.train()
    while result.steps < steps:
        sampler.set_epoch(epoch)
        for batch in loader:
            with accelerator.accumulate(module):
                loss, terms = module(batch)
                if not torch.isfinite(loss):
                    bad = [k for k, v in terms.items() if not torch.isfinite(v)]
                    raise AlembertError(
                        f"loss became {loss.item()} at step {result.steps + 1} (terms: {', '.join(bad) or 'total'}); "
                        "lower the learning rate or check the data; the last saved checkpoint is kept"
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            result.samples += batch["input_ids"].shape[0] * accelerator.num_processes
            for k, v in {"loss": loss, **terms}.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            running_n += 1
            if not accelerator.sync_gradients:
                continue
            result.steps += 1
            bar.update(1)
            if result.steps % cfg.log_every == 0 or result.steps == steps:
                means = {k: round(v / running_n, 5) for k, v in running.items()}
                running, running_n = {}, 0
                elapsed = time.time() - start
                bar.set_postfix({k: f"{v:.4f}" for k, v in means.items()})
                logger.log(step=result.steps, epoch=epoch, lr=scheduler.get_last_lr()[0], samples_per_s=round(result.samples / elapsed, 1), **means)
            if result.steps % eval_every == 0 or result.steps == steps:
                _evaluate(module, accelerator, evaluate, main_metric, on_best, logger, result, epoch)
            if result.steps >= steps:
                break
        epoch += 1
    bar.close()
    result.train_seconds = time.time() - start
    return result


def _evaluate(module, accelerator, evaluate, main_metric, on_best, logger, result: FitResult, epoch: int) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metrics = evaluate()
        result.last = metrics
        logger.log(step=result.steps, epoch=epoch, eval=metrics)
        if not result.best or metrics[main_metric] > result.best[main_metric]:
            result.best, result.best_step = metrics, result.steps
            on_best(metrics, result.steps)
        tqdm.write(f"step {result.steps}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    accelerator.wait_for_everyone()
    module.train()
