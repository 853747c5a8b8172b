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
    documents=None,
    cache_documents: bool = False,
) -> dict[str, float]:
    """recall@1, recall@10, MRR@10 of ``model``'s questions against the paragraphs; ``documents``: an
    optional ``(model, tokenizer)`` that embeds the paragraphs instead (asymmetric search,
    :func:`document_side`), which adds ``space_cosine`` to the metrics. The documents model's
    paragraphs are cached (:func:`cached_documents`), and ``model``'s own with ``cache_documents``
    (a model that does not change: a teacher; never a student between evals, whose entries would
    only pile up)."""
    qs, paragraphs, gold = squad_corpus(questions, path)
    if max_questions:
        qs, gold = qs[:max_questions], gold[:max_questions]
    extra = {}
    if documents is None and cache_documents:
        p = cached_documents(model, tokenizer, paragraphs, max_length, batch_size)
    elif documents is None:
        p = encode(model, tokenizer, paragraphs, max_length, batch_size)
    else:
        to_space, extra["space_cosine"] = document_side(model, tokenizer, *documents, qs, max_length)
        p = to_space(cached_documents(*documents, paragraphs, max_length, batch_size))
    q = encode(model, tokenizer, qs, max_length, batch_size)
    q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    p /= np.linalg.norm(p, axis=1, keepdims=True).clip(1e-12)
    return {**retrieval_metrics(q @ p.T, gold), **extra}


#: below this mean cosine between the two sides' embeddings of the same texts, they do not share a space
SPACE_COSINE = 0.5
SPACE_PROBES = 64


def document_side(model, tokenizer, doc_model, doc_tokenizer, probe_texts: list[str], max_length: int):
    """Asymmetric search (LEAF, 2025): the corpus embedded once, offline, by a big model (the teacher);
    only the queries go through the small ``model`` at query time. Returns ``(to_space, cosine)``:
    ``to_space`` maps ``doc_model``'s embeddings into ``model``'s space (a static student's saved PCA
    of its teacher; the identity for a student trained into its teacher's space, e.g. embed-mse with a
    Dense layer), and ``cosine`` is the mean cosine between the two sides' embeddings of the first
    ``SPACE_PROBES`` probe texts.

    Why a measured cosine and not only the widths: a 3-layer slice with a fresh Dense layer has the
    teacher's width and none of its space, and its queries would rank the teacher's documents at
    random. Below ``SPACE_COSINE`` it is a one-line error, before any document is embedded."""
    to_space = model.teacher_space if getattr(model, "teacher_map", None) is not None else (lambda e: e)
    probes = probe_texts[:SPACE_PROBES]
    a = encode(model, tokenizer, probes, max_length)
    b = encode(doc_model, doc_tokenizer, probes, max_length)
    if getattr(model, "teacher_map", None) is not None and b.shape[1] != model.teacher_map[0].shape[0]:
        raise AlembertError(
            f"--documents-by: the documents model gives {b.shape[1]}-dimensional embeddings; this static "
            f"student's PCA maps {model.teacher_map[0].shape[0]}-dimensional ones (its own teacher's): "
            "pass that teacher"
        )
    b = to_space(b)
    if a.shape[1] != b.shape[1]:
        raise AlembertError(
            f"--documents-by: the documents model gives {b.shape[1]}-dimensional embeddings, the query model "
            f"{a.shape[1]}; asymmetric search needs a student trained into that model's space (embed-mse with a "
            "Dense layer to its width, or a static student of it)"
        )
    a /= np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b /= np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    cosine = float((a * b).sum(1).mean())
    if cosine < SPACE_COSINE:
        raise AlembertError(
            f"--documents-by: the two models do not share a space (mean cosine {cosine:.2f} between their "
            f"embeddings of the same {len(probes)} questions, below {SPACE_COSINE}); asymmetric search needs a "
            "student distilled into the documents model's space (embed-mse or embed-cosine with it as the teacher)"
        )
    return to_space, cosine


def cached_documents(doc_model, doc_tokenizer, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    """(N, dim) embeddings of ``texts`` by ``doc_model``, kept in the cache when it is a PyTorch model:
    the teacher's 2,067 SQuAD paragraphs cost minutes on a CPU, and every student searched against them
    reuses them (key: the model's weights and head, its tokenizer, the texts, the max length)."""
    import hashlib
    import io

    from alembert.files import write_bytes_atomic
    from alembert.models.packaged import cache_dir

    if not hasattr(doc_model, "state_dict"):  # an export: no weights to key the cache on
        return encode(doc_model, doc_tokenizer, texts, max_length, batch_size)
    parts = [*_model_parts(doc_model, doc_tokenizer), hashlib.sha256("\x00".join(texts).encode()).hexdigest()]
    key = hashlib.sha256("|".join([*parts, str(max_length)]).encode()).hexdigest()[:24]
    path = cache_dir() / "embedding-documents" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    emb = encode(doc_model, doc_tokenizer, texts, max_length, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, emb)
    write_bytes_atomic(path, buf.getvalue())
    return emb


def _model_parts(model, tokenizer) -> list[str]:
    """What identifies an embedding model's outputs: its weights, pooling, normalisation, Dense layers
    and tokenizer."""
    from alembert.data.tokenize import tokenizer_fingerprint
    from alembert.distill.teacher_cache import weights_fingerprint

    model = getattr(model, "module", model)  # a runtime's wrapper holds the same weights: one key for both
    return [
        weights_fingerprint(model),
        str(getattr(model, "pooling", "")),
        str(getattr(model, "normalize", "")),
        str(len(getattr(model, "dense", ()))),
        tokenizer_fingerprint(tokenizer),
    ]


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

    from alembert.files import write_json_atomic
    from alembert.models.packaged import cache_dir

    parts = [*_model_parts(model, tokenizer), task, str(max_length)]
    path = cache_dir() / "embedding-eval" / f"{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:24]}.json"
    if path.is_file():
        return json.loads(path.read_text())
    kw = {"cache_documents": True} if task == "squad-retrieval" else {}  # its paragraphs serve --documents-by too
    metrics = evaluate_embedding(model, tokenizer, task, max_length, batch_size, **kw)
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
