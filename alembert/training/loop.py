"""The one training loop every command shares, on Hugging Face Accelerate.

``fit`` optimises a module whose ``forward(batch)`` returns ``(loss, terms)``:
the total loss and a dict of named loss terms for logging. Fine-tuning passes a
module that wraps the model's own loss; distillation passes one that holds the
student and its projections and composes the recipe's losses (the teacher is
kept outside the module so it is never wrapped or trained).

Batches are split across processes (``split_batches``): ``train.batch_size`` is the
global batch whatever the number of processes. With ``train.save_every`` the loop
writes checkpoints (see :mod:`alembert.training.checkpoint`) and can resume from one
exactly where it stopped: same weights, optimiser, scheduler, RNG and data position.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from alembert.config.schema import TrainConfig
from alembert.errors import AlembertError
from alembert.progress import progress
from alembert.training.checkpoint import LoopState, save_checkpoint
from alembert.training.logger import RunLogger


@dataclass
class FitResult:
    best: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    last: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    train_seconds: float = 0.0
    samples: int = 0
    eval_seconds: float = 0.0  # of train_seconds, spent evaluating (and saving the best model)


def make_optimizer(module: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm weights (BERT's convention).

    The fused kernel (one pass over all parameters, CPU and CUDA), as ``transformers.Trainer``'s
    default ``adamw_torch_fused``: a whole training step of a 3-layer MiniLM student (one CPU
    thread, batch 32 x 14 tokens, bf16 autocast) takes 214 ms instead of 457 ms with the
    per-tensor loop."""
    select = getattr(module, "select_trainable", None)
    if select is not None:  # a stage that trains part of a shared model sets which part before its optimiser exists
        select()
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


def total_steps(loader_len: int, cfg: TrainConfig) -> int:
    per_epoch = max(1, loader_len // cfg.grad_accum)
    steps = math.ceil(per_epoch * cfg.epochs)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


@dataclass
class FitSpec:
    """What one stage trains on and how it is judged; everything else comes from the run.

    ``evaluate`` (None: never evaluate, e.g. a dry run's timed steps) returns the dev metrics;
    the best by ``main_metric`` (lowest when ``minimize``) is reported to ``Callbacks.on_best``.
    ``run_dir`` receives checkpoints when ``train.save_every`` is set; ``resume`` is
    ``(checkpoint folder, LoopState)`` of this stage, from :func:`~alembert.training.checkpoint.latest_checkpoint`."""

    train: TrainConfig
    main_metric: str = "loss"
    evaluate: Callable[[], dict[str, float]] | None = None
    minimize: bool = False
    stage: int = 0
    run_dir: str | Path | None = None
    resume: tuple[Path, LoopState] | None = None
    signature: dict | None = None  # what the run is, saved with each checkpoint (training/resume.py)
    #: micro-batches of this stage's data order already trained on by an earlier stage over the same data
    #: (a pruning round continues where the previous round stopped); ignored when resuming
    start_batch: int = 0
    #: the trained model's config where it is not the one the command builds (a pruning round's cut), saved
    #: with each checkpoint so that a resume rebuilds that shape before loading the weights
    model_config: dict | None = None


class Timers:
    """Wall and CPU seconds per named phase (``with timers("eval"): ...``), summed over calls:
    how benchmarks and ``--dry-run`` see where a run's time goes without patching the code."""

    def __init__(self):
        self.spent: dict[str, tuple[float, float]] = {}

    @contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            w, c = self.spent.get(name, (0.0, 0.0))
            self.spent[name] = (w + time.perf_counter() - wall, c + time.process_time() - cpu)

    def wall(self, name: str) -> float:
        return self.spent.get(name, (0.0, 0.0))[0]

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {k: {"wall_s": round(w, 3), "cpu_s": round(c, 3)} for k, (w, c) in self.spent.items()}


@dataclass
class Callbacks:
    """Observers of a run; each is optional. ``on_step(step, seconds, terms)`` after every
    optimiser step (``seconds``: wall time of that step's micro-batches, ``terms``: the loss and
    its named terms of the last micro-batch, as floats); ``on_eval(metrics, step)`` and
    ``on_best(metrics, step)`` on the main process after each evaluation / new best.
    ``timers`` collects the phases ``fit`` (the whole loop), ``eval`` (evaluation and saving
    the best model, inside ``fit``), and whatever the caller times itself (e.g. ``teacher_cache``)."""

    on_step: Callable[[int, float, dict[str, float]], None] | None = None
    on_eval: Callable[[dict[str, float], int], None] | None = None
    on_best: Callable[[dict[str, float], int], None] | None = None
    timers: Timers = field(default_factory=Timers)

    def chain(self, other: Callbacks) -> Callbacks:
        """Both callbacks of each kind (self's first), sharing self's timers."""

        def both(a, b):
            if a is None or b is None:
                return a or b
            return lambda *x: (a(*x), b(*x))[-1]

        return Callbacks(
            both(self.on_step, other.on_step),
            both(self.on_eval, other.on_eval),
            both(self.on_best, other.on_best),
            self.timers,
        )


def fit(
    module: torch.nn.Module,
    loader,
    sampler,
    spec: FitSpec,
    accelerator: Accelerator,
    logger: RunLogger,
    callbacks: Callbacks | None = None,
) -> FitResult:
    """Train ``module`` on ``loader`` as ``spec`` says; see :class:`FitSpec` and :class:`Callbacks`."""
    callbacks = callbacks or Callbacks()
    with callbacks.timers("fit"):
        return _fit(module, loader, sampler, spec, accelerator, logger, callbacks)


def _fit(
    module, loader, sampler, spec: FitSpec, accelerator: Accelerator, logger: RunLogger, callbacks: Callbacks
) -> FitResult:
    cfg, stage, run_dir, resume = spec.train, spec.stage, spec.run_dir, spec.resume
    steps = total_steps(len(loader), cfg)
    # a stage owns the accelerator alone: a checkpoint holds this stage's module, optimiser and scheduler
    # only (not every earlier stage's as model_1, optimizer_1, ...), which is what a resume loads back
    accelerator.free_memory()
    optimizer = make_optimizer(module, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    module, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader, scheduler)
    state = LoopState(stage=stage)
    if resume is not None:
        accelerator.load_state(str(resume[0]))
        state = resume[1]
    elif spec.start_batch:
        state.epoch, state.batch_in_epoch = divmod(spec.start_batch, len(loader))
    eval_every = cfg.eval_every or max(1, len(loader) // cfg.grad_accum)
    start, samples_here, eval_seconds = time.time(), 0, 0.0
    running: dict[str, float] = {}
    running_n = 0
    step_start = time.perf_counter()
    last: dict[str, float] = {}
    losses: list[float] = []  # every micro-batch's loss: a run that diverged says so at the end
    module.train()
    # a with block: an error leaves the bar closed, so its message starts on a line of its own
    with progress(steps, "training", "step", initial=state.step, disable=not accelerator.is_main_process) as bar:
        while state.step < steps and not state.stage_done:
            sampler.set_epoch(state.epoch)
            loader.set_epoch(state.epoch)  # Accelerate's own epoch counter re-seeds samplers on iteration
            if hasattr(loader.collate_fn, "set_epoch"):  # dynamic masking: each batch's masks from its position
                loader.collate_fn.set_epoch(state.epoch, state.batch_in_epoch)
            batches = accelerator.skip_first_batches(loader, state.batch_in_epoch) if state.batch_in_epoch else loader
            for batch in batches:
                with accelerator.accumulate(module):
                    loss, terms = module(batch)
                    if not torch.isfinite(loss):
                        bad = [k for k, v in terms.items() if not torch.isfinite(v)]
                        raise AlembertError(
                            f"loss became {loss.item()} at step {state.step + 1} (terms: {', '.join(bad) or 'total'}); "
                            "lower the learning rate or check the data; the last saved checkpoint is kept"
                        )
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                n = batch["input_ids"].shape[0] * accelerator.num_processes
                state.samples += n
                samples_here += n
                state.batch_in_epoch += 1
                losses.append(float(loss.detach()))
                for k, v in {"loss": loss, **terms}.items():
                    running[k] = running.get(k, 0.0) + float(v.detach())
                running_n += 1
                if not accelerator.sync_gradients:
                    continue
                state.step += 1
                bar.update(1)
                if callbacks.on_step is not None:
                    now = time.perf_counter()
                    callbacks.on_step(
                        state.step, now - step_start, {k: float(v.detach()) for k, v in {"loss": loss, **terms}.items()}
                    )
                    step_start = now
                if state.step % cfg.log_every == 0 or state.step == steps:
                    means = {k: v / running_n for k, v in running.items()}
                    if accelerator.num_processes > 1:  # each process saw its share of the batch: log the mean over all
                        reduced = accelerator.reduce(
                            torch.tensor(list(means.values()), device=accelerator.device), "mean"
                        )
                        means = dict(zip(means, reduced.tolist(), strict=True))
                    means = {k: round(v, 5) for k, v in means.items()}
                    running, running_n = {}, 0
                    bar.set_postfix({k: f"{v:.4f}" for k, v in means.items()})
                    speed = round(samples_here / (time.time() - start), 1)
                    logger.log(
                        stage=stage,
                        step=state.step,
                        epoch=state.epoch,
                        lr=scheduler.get_last_lr()[0],
                        samples_per_s=speed,
                        **means,
                    )
                if spec.evaluate is not None and (state.step % eval_every == 0 or state.step == steps):
                    eval_start = time.time()
                    with callbacks.timers("eval"):
                        last = _evaluate(module, accelerator, spec, callbacks, logger, state)
                    eval_seconds += time.time() - eval_start
                    step_start = time.perf_counter()
                if cfg.save_every and run_dir and (state.step % cfg.save_every == 0 or state.step == steps):
                    state.stage_done = state.step >= steps
                    save_checkpoint(accelerator, run_dir, state, cfg.keep_checkpoints, spec.signature)
                    step_start = time.perf_counter()
                if state.step >= steps:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
    if accelerator.is_main_process and (note := divergence_note(losses)):
        tqdm.write(note)
    return FitResult(
        state.best, state.best_step, last or state.best, state.step, time.time() - start, samples_here, eval_seconds
    )


def divergence_note(losses: list[float], window: int = 10, factor: float = 1.5) -> str | None:
    """A warning when the training loss ended well above where it started (the mean of the last
    ``window`` micro-batches over ``factor`` x the first one's, computed before any update): a
    learning rate too high diverges to a finite loss within a few steps and would otherwise
    "succeed" silently. Runs shorter than two windows are not judged."""
    if len(losses) < 2 * window:
        return None
    early, late = losses[0], sum(losses[-window:]) / window
    if late > factor * early and late - early > 0.05:
        return (
            f"warning: the training loss rose from {early:.4f} to {late:.4f}: the run probably diverged; "
            "lower the learning rate (--lr) and check the dev metric before using this model"
        )
    return None


def _evaluate(module, accelerator, spec: FitSpec, callbacks: Callbacks, logger, state: LoopState) -> dict[str, float]:
    """Main process evaluates (and saves a new best); the others wait."""
    metrics: dict[str, float] = {}
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metrics = spec.evaluate()
        logger.log(stage=state.stage, step=state.step, epoch=state.epoch, eval=metrics)
        if callbacks.on_eval is not None:
            callbacks.on_eval(metrics, state.step)
        sign = -1 if spec.minimize else 1
        if not state.best or sign * metrics[spec.main_metric] > sign * state.best[spec.main_metric]:
            state.best, state.best_step = metrics, state.step
            if callbacks.on_best is not None:
                callbacks.on_best(metrics, state.step)
        tqdm.write(f"step {state.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    accelerator.wait_for_everyone()
    module.train()
    return metrics
