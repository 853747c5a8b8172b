"""What ``alembert bench`` needs of a task: its dev set, how to load and score a model on it,
and real texts for the timed inputs. GLUE tasks score classifiers (PyTorch or ONNX);
``squad`` scores question-answering models (PyTorch) with the official EM/F1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembert.errors import AlembertError


@dataclass
class BenchTask:
    name: str
    main_metric: str
    dev_examples: int
    texts_a: list[str]
    texts_b: list[str] | None
    seq_len: int  # default timed sequence length: the task's usual max length
    load: Callable[[Path, int], object]  # (resolved folder, threads) -> model
    score: Callable[[object, object, int], dict[str, float]]  # (model, tokenizer, max length) -> dev metrics


def _cycle(column: list[str], n: int) -> list[str]:
    return [column[i % len(column)] for i in range(n)]


def glue_task(name: str | None, data_dir, max_eval_samples: int | None, n_texts: int, eval_batch_size: int,
              data: dict | None = None, reference=None) -> BenchTask:
    from alembert.config.schema import DataConfig
    from alembert.data.load import load_split, resolve_task
    from alembert.data.tokenize import tokenize_dataset
    from alembert.evaluation.evaluate import evaluate_model
    from alembert.export.runtime import load_any
    from alembert.models.load import is_task_model, load_config

    cfg = DataConfig(task=name, data_dir=data_dir, max_eval_samples=max_eval_samples, **(data or {}))
    task = resolve_task(cfg, (lambda: load_config(reference)) if reference else None, f"model {reference}")  # your own data: the reference's labels
    dev = load_split(cfg, task, "dev")

    def load(path: Path, threads: int):
        if not is_task_model(load_config(path)):
            raise AlembertError(f"model {path} has no classification head; bench fine-tuned models (alembert finetune) or their exports")
        return load_any(path, task, threads)

    def score(model, tokenizer, max_length: int):  # GLUE: the data config's max length (128), as at training
        return evaluate_model(model, tokenizer, task, tokenize_dataset(dev, tokenizer, cfg.max_length), eval_batch_size)

    texts_b = _cycle(dev["text_b"], n_texts) if "text_b" in dev.column_names else None
    return BenchTask(task.name, task.main_metric, len(dev), _cycle(dev["text_a"], n_texts), texts_b, 128, load, score)


def squad_task(data_dir, max_eval_samples: int | None, n_texts: int, eval_batch_size: int) -> BenchTask:
    from alembert.config.schema import DataConfig
    from alembert.export.runtime import is_onnx_dir
    from alembert.qa.run import MAIN_METRIC, MAX_LENGTH, evaluate_qa, load_qa_model, qa_examples

    dev, _ = qa_examples(DataConfig(task="squad", data_dir=data_dir, max_eval_samples=max_eval_samples), "dev")

    def load(path: Path, threads: int):
        if is_onnx_dir(path):
            raise AlembertError(f"model {path} is an ONNX export; ONNX export covers classifiers, so bench the question-answering PyTorch folder")
        return load_qa_model(path, need_head=True)

    def score(model, tokenizer, max_length: int):  # windows of the timed length (384 unless a model allows less)
        return evaluate_qa(model, tokenizer, dev, max_length, None, eval_batch_size)

    return BenchTask("squad", MAIN_METRIC, len(dev), _cycle(dev["question"], n_texts), _cycle(dev["context"], n_texts),
                     MAX_LENGTH, load, score)


def bench_task(name: str | None, data_dir=None, max_eval_samples: int | None = None, n_texts: int = 32,
               eval_batch_size: int = 128, data: dict | None = None, reference=None) -> BenchTask:
    """``data``: your own dev file (dev_file, text/label columns, labels), scored with the labels saved in
    ``reference`` (the first model) unless ``labels`` are given."""
    if str(name).strip().lower() == "squad":
        return squad_task(data_dir, max_eval_samples, n_texts, eval_batch_size)
    return glue_task(name, data_dir, max_eval_samples, n_texts, eval_batch_size, data, reference)
