"""What ``alembert bench`` needs of a task: its dev set, how to load and score a model on it,
real texts for the timed inputs and how to time them. GLUE tasks score classifiers (any runtime:
:func:`alembert.runtimes.load_any`); ``squad`` scores question-answering models (PyTorch) with the
official EM/F1; both time fixed-length inputs. The zero-shot embedding tasks (``stsb-zeroshot``,
``squad-retrieval``) score sentence-embedding models (any runtime) and time real sentences with
dynamic padding. Each task kind's ``bench`` (alembert/tasks/) calls its builder here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alembert.errors import AlembertError
from alembert.measure.size import count_embedding_params, count_params
from alembert.measure.speed import Workload, batch_workload, fixed_length_inputs, sentence_workload

SERVE_SENTENCES = 1024  # dev texts of a classifier's serving bench (SST-2 dev: all 872)
THROUGHPUT_SENTENCES = 256  # sentences per timed throughput pass of an embedding model (8 batches of 32)


@dataclass
class BenchTask:
    name: str
    main_metric: str
    dev_examples: int
    texts_a: list[str]
    texts_b: list[str] | None
    seq_len: int  # the task's usual max length (the timed length is the kind's default_max_length of the reference)
    load: Callable[[Path, int], tuple[object, object]]  # (resolved folder, threads) -> (model, tokenizer)
    score: Callable[[object, object, int], dict[str, float]]  # (model, tokenizer, max length) -> dev metrics
    # (task, model, tokenizer, seq_len, batch_size) -> the timed Workload
    workload: Callable[..., Workload] = field(default=lambda *a: fixed_length_workload(*a))
    count: Callable[[Path, object], tuple[int, int]] = field(
        default=lambda path, config: count_params(config)
    )  # params
    timing: str | None = None  # how the inputs are timed, for the report (None: fixed length)
    # real dev texts, in file order, for the serving bench (alembert/measure/serving.py); None: not served
    serve_a: list[str] | None = None
    serve_b: list[str] | None = None


def fixed_length_workload(bt: BenchTask, model, tokenizer, seq_len: int, batch_size: int) -> Workload:
    """Real dev texts padded/truncated to exactly ``seq_len`` tokens, the same shapes for every model."""
    return batch_workload(model, fixed_length_inputs(tokenizer, bt.texts_a, bt.texts_b, seq_len), batch_size)


def _cycle(column: list[str], n: int) -> list[str]:
    return [column[i % len(column)] for i in range(n)]


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
    texts_b = _cycle(dev["text_b"], n_texts) if pair else None
    served = min(len(dev), SERVE_SENTENCES)
    return BenchTask(
        task.name,
        task.main_metric,
        len(dev),
        _cycle(dev["text_a"], n_texts),
        texts_b,
        128,
        load,
        score,
        serve_a=list(dev["text_a"][:served]),
        serve_b=list(dev["text_b"][:served]) if pair else None,
    )


def squad_task(data_dir, max_eval_samples: int | None, n_texts: int, eval_batch_size: int) -> BenchTask:
    from alembert.config.schema import DataConfig
    from alembert.models.load import load_tokenizer
    from alembert.qa.run import MAIN_METRIC, MAX_LENGTH, evaluate_qa, load_qa_model, qa_examples
    from alembert.runtimes import PYTORCH_FORMAT, runtime_for
    from alembert.runtimes.pytorch import TorchModel

    dev, _ = qa_examples(DataConfig(task="squad", data_dir=data_dir, max_eval_samples=max_eval_samples), "dev")

    def load(path: Path, threads: int):
        runtime = runtime_for(path)
        if runtime.format != PYTORCH_FORMAT:
            raise AlembertError(
                f"model {path} is an {runtime.title or runtime.format} export; "
                "exports cover classifiers and sentence embeddings, so bench the question-answering PyTorch folder"
            )
        return TorchModel(load_qa_model(path, need_head=True), "start_logits"), load_tokenizer(path)

    def score(model, tokenizer, max_length: int):  # windows of the timed length (384 unless a model allows less)
        return evaluate_qa(model, tokenizer, dev, max_length, None, eval_batch_size)

    return BenchTask(
        "squad",
        MAIN_METRIC,
        len(dev),
        _cycle(dev["question"], n_texts),
        _cycle(dev["context"], n_texts),
        MAX_LENGTH,
        load,
        score,
    )


def embedding_task(name: str, data_dir, max_eval_samples: int | None, eval_batch_size: int) -> BenchTask:
    """A zero-shot embedding task: sentence-embedding models (PyTorch folders, aliases, ONNX exports).
    Timed on the task's real sentences: batch-1 latency in their dev-file order, throughput over
    :data:`THROUGHPUT_SENTENCES` of them spread evenly over the file, length-sorted, batch 32."""
    from alembert.embedding.evaluate import (
        MAIN_METRIC,
        evaluate_embedding,
        squad_corpus,
        stsb_pairs,
    )
    from alembert.runtimes import load_any_embedding

    if name == "stsb-zeroshot":
        a, b, gold = stsb_pairs(data_dir, max_eval_samples)
        texts, n, kw = (
            list(dict.fromkeys(x for pair in zip(a, b, strict=True) for x in pair)),
            len(gold),
            {"data_dir": data_dir, "max_pairs": max_eval_samples},
        )
    else:
        texts, _, gold = squad_corpus()
        n, kw = min(len(gold), max_eval_samples or len(gold)), {"max_questions": max_eval_samples}

    def load(path: Path, threads: int):
        return load_any_embedding(path, threads=threads)

    def score(model, tokenizer, max_length: int):
        return evaluate_embedding(model, tokenizer, name, max_length, eval_batch_size, **kw)

    step = max(1, len(texts) // THROUGHPUT_SENTENCES)
    spread = texts[::step][:THROUGHPUT_SENTENCES]

    def workload(bt, model, tokenizer, seq_len: int, batch_size: int) -> Workload:
        return sentence_workload(model, tokenizer, texts[:THROUGHPUT_SENTENCES], spread, batch_size, seq_len)

    timing = (
        f"real {name} dev sentences, dynamic padding (truncated at the max length): latency at batch 1 in dev-file "
        f"order, throughput over {len(spread)} sentences spread over the file, length-sorted batches of the batch size"
    )
    return BenchTask(
        name,
        MAIN_METRIC[name],
        n,
        texts,
        None,
        128,
        load,
        score,
        workload,
        lambda path, config: count_embedding_params(path),
        timing,
    )
