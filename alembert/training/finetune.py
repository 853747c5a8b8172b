"""``alembert finetune``: train a model on a task and keep its best checkpoint."""

from __future__ import annotations

import torch

from alembert.config.load import dump_yaml
from alembert.config.schema import FinetuneConfig
from alembert.data.batching import train_loader
from alembert.data.load import resolve_task
from alembert.evaluation.evaluate import evaluate_model
from alembert.models.load import (
    check_max_length,
    load_classifier,
    load_config,
    load_tokenizer,
    n_params,
)
from alembert.models.preprocessing import record
from alembert.training.checkpoint import latest_checkpoint
from alembert.training.logger import RunLogger
from alembert.training.loop import fit
from alembert.training.output import (
    check_output_dir,
    finish_output,
    prepare_output_dir,
    run_dir,
    save_model_atomic,
    write_json_atomic,
    write_text_atomic,
)
from alembert.training.setup import make_accelerator, task_data


class SupervisedModule(torch.nn.Module):
    """``forward(batch) -> (loss, terms)`` with the model's own task loss (CE, or MSE for regression)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        loss = self.model(**batch).loss
        return loss, {"task": loss.detach()}


def run_finetune(cfg: FinetuneConfig) -> dict:
    # Every check runs before the output folder is created or written: a refused run leaves it as it was.
    task = resolve_task(cfg.data, lambda: load_config(cfg.model), f"model {cfg.model}")
    check_output_dir(cfg.output_dir, cfg.overwrite, cfg.resume)  # checks only (writable, not in use): nothing is created or modified
    resume = latest_checkpoint(run_dir(cfg.output_dir, cfg.overwrite, cfg.resume)) if cfg.resume else None
    check_max_length(load_config(cfg.model), cfg.data.max_length, cfg.model)
    accelerator = make_accelerator(cfg.train)
    tokenizer = load_tokenizer(cfg.model)
    with accelerator.main_process_first():  # the tokenised cache is written by one process
        train, dev = task_data(cfg.data, task, tokenizer)
    model = load_classifier(cfg.model, task)
    record(model, "classification", cfg.data.max_length)
    out = prepare_output_dir(cfg.output_dir, cfg.overwrite, cfg.resume)  # all checks passed: create it
    loader, sampler = train_loader(train, tokenizer, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length)
    logger = RunLogger(out / "log.jsonl", enabled=accelerator.is_main_process, append=cfg.resume,
                       accelerator=accelerator, config=cfg.model_dump(mode="json"))
    if accelerator.is_main_process:
        write_text_atomic(out / "finetune_config.yaml", dump_yaml(cfg))

    def evaluate():
        return evaluate_model(accelerator.unwrap_model(module).model, tokenizer, task, dev, cfg.train.eval_batch_size)

    def on_best(metrics, step):
        save_model_atomic(accelerator.unwrap_model(module).model, tokenizer, out)

    module = SupervisedModule(model)
    result = fit(module, loader, sampler, cfg.train, accelerator, evaluate, task.main_metric, on_best, logger, out, 0, resume)
    summary = {
        "task": task.name,
        "model": cfg.model,
        "main_metric": task.main_metric,
        "dev": result.best,
        "best_step": result.best_step,
        "last_dev": result.last,
        "steps": result.steps,
        "train_examples": len(train),
        "dev_examples": len(dev),
        "train_seconds": round(result.train_seconds, 1),
        "samples_per_second": round(result.samples / max(result.train_seconds, 1e-9), 1),
        "parameters": n_params(model),
    }
    logger.close()
    if accelerator.is_main_process:
        write_json_atomic(out / "metrics.json", summary)
    finish_output(out)  # an --overwrite run's files replace the previous run's only now
    return summary
