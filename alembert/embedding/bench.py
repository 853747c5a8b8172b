"""``alembert bench`` on the zero-shot embedding tasks: sentence-embedding models (any runtime)
scored on STS-B or SQuAD retrieval, timed on real sentences with dynamic padding."""

from __future__ import annotations

from pathlib import Path

from alembert.errors import AlembertError
from alembert.measure.bench_task import THROUGHPUT_SENTENCES, BenchTask
from alembert.measure.size import count_embedding_params
from alembert.measure.speed import Workload, sentence_workload


def embedding_task(
    name: str, data_dir, max_eval_samples: int | None, eval_batch_size: int, documents_by: str | None = None
) -> BenchTask:
    """A zero-shot embedding task: sentence-embedding models (PyTorch folders, aliases, ONNX exports).
    Timed on the task's real sentences: batch-1 latency in their dev-file order, throughput over
    :data:`THROUGHPUT_SENTENCES` of them spread evenly over the file, length-sorted, batch 32. For
    squad-retrieval those are the questions: the query side, which is all a model does at query time
    when ``documents_by`` (the teacher) embeds the paragraphs once (asymmetric search, scored so)."""
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
    if documents_by and name != "squad-retrieval":
        raise AlembertError(f"--documents-by is for --task squad-retrieval (asymmetric search), not {name}")
    if documents_by:  # loaded once, its paragraphs embedded once (cached) for every model's questions
        kw["documents"] = load_any_embedding(documents_by)
    elif name == "squad-retrieval":  # a benched model is a finished one: its own paragraphs are kept (keyed on its
        kw["cache_documents"] = True  # weights), so benching it again (a resumed frontier) embeds the questions only

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
    if name == "squad-retrieval":
        timing += (
            f"; scored with the paragraphs embedded once by {documents_by} (asymmetric), timed on the questions alone"
            if documents_by
            else "; timed on the questions (the query side), scored with each model embedding the paragraphs too"
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
