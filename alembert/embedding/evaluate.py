"""The two zero-shot evaluations of an embedding model, on real dev data, no fine-tuning.

- ``stsb-zeroshot``: STS-B dev, 1,500 sentence pairs scored 0-5 by people; the cosine of the
  two embeddings is the prediction; Spearman (main) and Pearson correlation.
- ``squad-retrieval``: SQuAD v1.1 dev as a search task: each question against all 2,067
  paragraphs of the file; the paragraph it was asked on is the one relevant document;
  recall@1, recall@10, MRR@10. By default the questions of the 10 test articles of
  :func:`alembert.data.squad.split_by_article` only (1,693), so a student distilled on the
  other articles' text is scored on questions it never saw; ``questions="all"`` uses every one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alembert.embedding.cache import encode
from alembert.embedding.metrics import cosine_scores, retrieval_metrics, sts_metrics
from alembert.errors import AlembertError

EMBEDDING_TASKS = ("stsb-zeroshot", "squad-retrieval")
MAIN_METRIC = {"stsb-zeroshot": "spearman", "squad-retrieval": "mrr@10"}


def stsb_pairs(
    data_dir: str | Path | None = None, max_pairs: int | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    from alembert.data.glue import get_task
    from alembert.data.readers import default_data_dir, load_glue_split

    ds = load_glue_split(get_task("stsb"), data_dir or default_data_dir(), "dev")
    if max_pairs:
        ds = ds.select(range(min(max_pairs, len(ds))))
    return list(ds["text_a"]), list(ds["text_b"]), np.asarray(ds["label"], dtype=np.float64)


def stsb_zeroshot(
    model, tokenizer, max_length: int = 256, batch_size: int = 64, data_dir=None, max_pairs: int | None = None
) -> dict[str, float]:
    a, b, gold = stsb_pairs(data_dir, max_pairs)
    texts = list(dict.fromkeys(a + b))
    pos = {t: i for i, t in enumerate(texts)}
    emb = encode(model, tokenizer, texts, max_length, batch_size)
    scores = cosine_scores(emb[[pos[t] for t in a]], emb[[pos[t] for t in b]])
    return sts_metrics(scores, gold)


def squad_corpus(questions: str = "test", path=None) -> tuple[list[str], list[str], np.ndarray]:
    """(questions, paragraphs, gold paragraph index per question)."""
    from alembert.data.squad import default_squad_file, split_by_article, squad_examples

    if questions not in ("test", "all"):
        raise AlembertError(f"retrieval questions {questions!r}: use test (the held-out articles) or all")
    path = path or default_squad_file()
    every = squad_examples(path)
    paragraphs = list(dict.fromkeys(every["context"]))
    asked = split_by_article(path)[1] if questions == "test" else every
    pos = {p: i for i, p in enumerate(paragraphs)}
    return list(asked["question"]), paragraphs, np.asarray([pos[c] for c in asked["context"]])


def squad_retrieval(
    model,
    tokenizer,
    max_length: int = 256,
    batch_size: int = 64,
    questions: str = "test",
    max_questions: int | None = None,
    path=None,
) -> dict[str, float]:
    qs, paragraphs, gold = squad_corpus(questions, path)
    if max_questions:
        qs, gold = qs[:max_questions], gold[:max_questions]
    q = encode(model, tokenizer, qs, max_length, batch_size)
    p = encode(model, tokenizer, paragraphs, max_length, batch_size)
    q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    p /= np.linalg.norm(p, axis=1, keepdims=True).clip(1e-12)
    return retrieval_metrics(q @ p.T, gold)


def encode_speed(model, tokenizer, max_length: int = 256, n: int = 512, batch_size: int = 32) -> float:
    """Sentences per second encoding the first ``n`` distinct STS-B dev sentences (real lengths,
    length-sorted batches of ``batch_size``, after one warm-up batch) in this process's threads."""
    import time

    a, b, _ = stsb_pairs()
    texts = list(dict.fromkeys(a + b))[:n]
    encode(model, tokenizer, texts[:batch_size], max_length, batch_size)
    start = time.perf_counter()
    encode(model, tokenizer, texts, max_length, batch_size)
    return len(texts) / (time.perf_counter() - start)


def cached_evaluation(model, tokenizer, task: str, max_length: int = 256, batch_size: int = 64) -> dict[str, float]:
    """:func:`evaluate_embedding` of a model that does not change (a teacher), computed once per
    weights, head, tokenizer, task and max length and kept in the cache: a 12-layer teacher's
    retrieval run costs minutes on a CPU, and every student of it is compared with the same figures."""
    import hashlib
    import json

    from alembert.data.tokenize import tokenizer_fingerprint
    from alembert.distill.teacher_cache import weights_fingerprint
    from alembert.files import write_json_atomic
    from alembert.models.packaged import cache_dir

    parts = [
        weights_fingerprint(model),
        model.pooling,
        str(model.normalize),
        str(len(model.dense)),
        tokenizer_fingerprint(tokenizer),
        task,
        str(max_length),
    ]
    path = cache_dir() / "embedding-eval" / f"{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:24]}.json"
    if path.is_file():
        return json.loads(path.read_text())
    metrics = evaluate_embedding(model, tokenizer, task, max_length, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, metrics)
    return metrics


def evaluate_embedding(
    model, tokenizer, task: str, max_length: int = 256, batch_size: int = 64, **kw
) -> dict[str, float]:
    if task == "stsb-zeroshot":
        return stsb_zeroshot(model, tokenizer, max_length, batch_size, **kw)
    if task == "squad-retrieval":
        return squad_retrieval(model, tokenizer, max_length, batch_size, **kw)
    raise AlembertError(f"unknown embedding task {task!r}; use one of {', '.join(EMBEDDING_TASKS)}")
