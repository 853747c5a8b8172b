"""``alembert bench`` on a GLUE task or your own file: classifiers (any runtime) scored with the
official metrics, timed on real dev texts at a fixed length and served at their own lengths."""

from __future__ import annotations

from pathlib import Path

from alembert.errors import AlembertError
from alembert.measure.bench_task import SERVE_SENTENCES, BenchTask, cycle


def glue_task(
    name: str | None,
    data_dir,
    max_eval_samples: int | None,
    n_texts: int,
    eval_batch_size: int,
    data: dict | None = None,
    reference=None,
) -> BenchTask:
    from alembert.classification.evaluate import evaluate_model
    from alembert.config.schema import DataConfig
    from alembert.data.load import load_split, resolve_task
    from alembert.data.tokenize import tokenize_dataset
    from alembert.models.load import is_task_model, load_config, load_tokenizer
    from alembert.runtimes import load_any

    cfg = DataConfig(task=name, data_dir=data_dir, max_eval_samples=max_eval_samples, **(data or {}))
    task = resolve_task(
        cfg, (lambda: load_config(reference)) if reference else None, f"model {reference}"
    )  # your own data: the reference's labels
    dev = load_split(cfg, task, "dev")

    def load(path: Path, threads: int):
        if not is_task_model(load_config(path)):
            raise AlembertError(
                f"model {path} has no classification head; bench fine-tuned models (alembert finetune) or their exports"
            )
        return load_any(path, task, threads), load_tokenizer(path)

    def score(model, tokenizer, max_length: int):  # GLUE: the data config's (the reference's training length)
        return evaluate_model(model, tokenizer, task, tokenize_dataset(dev, tokenizer, cfg.max_length), eval_batch_size)

    pair = "text_b" in dev.column_names
    texts_b = cycle(dev["text_b"], n_texts) if pair else None
    served = min(len(dev), SERVE_SENTENCES)
    return BenchTask(
        task.name,
        task.main_metric,
        len(dev),
        cycle(dev["text_a"], n_texts),
        texts_b,
        128,
        load,
        score,
        serve_a=list(dev["text_a"][:served]),
        serve_b=list(dev["text_b"][:served]) if pair else None,
    )
