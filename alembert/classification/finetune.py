"""``alembert finetune`` of a classifier or regressor: train it on a task and keep its best checkpoint."""

from __future__ import annotations

from alembert.classification.evaluate import evaluate_model
from alembert.config.schema import DataConfig, FinetuneConfig
from alembert.data.batching import train_loader
from alembert.data.glue import TaskSpec
from alembert.data.load import load_split, resolve_task
from alembert.data.tokenize import tokenize_dataset
from alembert.errors import AlembertError
from alembert.files import save_model_atomic
from alembert.models.load import (
    check_max_length,
    load_classifier,
    load_config,
    load_tokenizer,
    n_params,
)
from alembert.models.preprocessing import record
from alembert.training.loop import Callbacks, FitSpec
from alembert.training.plan import PlannedStage
from alembert.training.runner import Run
from alembert.training.supervised import SupervisedModule


def task_data(cfg: DataConfig, task: TaskSpec, tokenizer):
    """Tokenised (train, dev) for a task; errors if either is empty."""
    out = []
    for split in ("train", "dev"):
        ds = load_split(cfg, task, split)
        if len(ds) == 0:
            raise AlembertError(f"the {split} set of task {task.name} is empty; check --{split}-file or --data-dir")
        out.append(tokenize_dataset(ds, tokenizer, cfg.max_length))
    return tuple(out)


def run_finetune(cfg: FinetuneConfig, callbacks: Callbacks | None = None) -> dict:
    """Fine-tune ``cfg.model`` on ``cfg.data``; the ``metrics.json`` dict (or, with
    ``cfg.dry_run``, the plan: see :mod:`alembert.training.plan`)."""
    # Every check runs before the output folder is created or written: a refused run leaves it as it was.
    task = resolve_task(cfg.data, lambda: load_config(cfg.model), f"model {cfg.model}")
    run = Run("finetune", cfg, callbacks)
    check_max_length(load_config(cfg.model), cfg.data.max_length, cfg.model)
    accelerator = run.make_accelerator(cfg.train)
    tokenizer = load_tokenizer(cfg.model)
    with run.cache_guard():  # the tokenised cache is written by one process
        train, dev = task_data(cfg.data, task, tokenizer)
    model = load_classifier(cfg.model, task)
    record(model, "classification", cfg.data.max_length)
    loader, sampler = train_loader(train, tokenizer, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length)
    module = SupervisedModule(model)

    def evaluate():
        return evaluate_model(accelerator.unwrap_model(module).model, tokenizer, task, dev, cfg.train.eval_batch_size)

    spec = FitSpec(cfg.train, task.main_metric, evaluate, resume=run.stage_resume(0))
    if run.dry_run:
        return run.plan(
            what=f"fine-tune {cfg.model} on {task.name}",
            examples={"train_examples": len(train), "dev_examples": len(dev)},
            stages=[PlannedStage("train", module, loader, sampler, spec)],
            evaluations={"student": evaluate},
        )
    out = run.open("finetune_config.yaml", cfg)  # all checks passed: create it

    def on_best(metrics, step):
        save_model_atomic(accelerator.unwrap_model(module).model, tokenizer, out)

    run.fit(module, loader, sampler, spec, on_best)
    summary = run.summary(
        kind="classification",
        task=task.name,
        model=cfg.model,
        main_metric=task.main_metric,
        train_examples=len(train),
        dev_examples=len(dev),
        parameters=n_params(model),
        details={"max_length": cfg.data.max_length},
    )
    return run.finish(summary)
