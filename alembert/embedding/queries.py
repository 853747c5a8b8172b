"""Query groups for ranking distillation: the queries, and each one's candidates as the teacher ranks them.

A ranking term (:mod:`alembert.terms.ranking`) trains on groups of rows: a query, then the
``k`` passages of the run's texts the teacher scores highest for it. This module makes them:

* **queries** from ``--queries`` sources (files as for ``--corpus``; ``squad``: the questions of
  the SQuAD *training* articles, each with its own paragraph as its known passage) and
  ``--pseudo-queries N``: inverse cloze (Lee et al. 2019), a sentence drawn from a passage of
  two or more sentences stands for a query whose passage is that one (seeded; only the run's own
  passages are drawn from, so the held-out SQuAD articles, never among them, are never drawn);
* **passages**: every text of the run that is not a query;
* **mining**: cosine top-k of each query's teacher embedding over the passages' (from the
  teacher's embedding cache, in blocks), its known passage moved first (kept in the list if the
  teacher ranked it lower); the result is cached beside the embeddings, keyed by what it reads;
* **batches**: :class:`QueryGroupSampler` draws whole groups; ``--batch-size`` counts queries.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from alembert.data.batching import model_columns
from alembert.embedding.shards import build, read
from alembert.errors import AlembertError


def squad_queries() -> list[tuple[str, str]]:
    """(question, its paragraph) of the SQuAD training articles (never the held-out ones)."""
    from alembert.data.squad import split_by_article

    train, _ = split_by_article()
    # stripped as load_texts strips the run's texts: a question with a trailing space is the same text
    pairs = zip(train["question"], train["context"], strict=True)
    return list(dict.fromkeys((q.strip(), c.strip()) for q, c in pairs if q.strip()))


def load_queries(sources: list[str], text_column: str | None = None) -> list[tuple[str, str | None]]:
    """(query, its known passage or None) of every ``--queries`` source, distinct, in order."""
    from alembert.embedding.data import SQUAD_SOURCE, load_texts

    found: list[tuple[str, str | None]] = []
    for src in sources:
        if src == SQUAD_SOURCE:
            found += squad_queries()
            continue
        try:
            found += [(q, None) for q in load_texts([src], text_column=text_column)]
        except AlembertError as exc:
            if str(exc).startswith("no text in"):
                raise AlembertError(f"--queries {src} holds no text; give a file with one query per line") from None
            raise
    seen: dict[str, str | None] = {}
    for q, p in found:
        if q not in seen or seen[q] is None:
            seen[q] = p
    return list(seen.items())


def inverse_cloze(passages: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (sentence, its passage) pairs: passages of two or more sentences drawn without
    replacement (seeded), one sentence of each drawn as the pseudo-query."""
    from alembert.data.corpus import split_sentences

    rng = random.Random(seed)
    order = list(range(len(passages)))
    rng.shuffle(order)
    out = []
    for i in order:
        sentences = [s for s in split_sentences([passages[i]]) if len(s.split()) >= 4]
        if len(sentences) >= 2:
            out.append((rng.choice(sentences), passages[i]))
            if len(out) == n:
                break
    return out


def mine(
    emb,
    queries: np.ndarray,
    passages: np.ndarray,
    k: int,
    positives: np.ndarray | None = None,
    block: int = 1024,
) -> np.ndarray:
    """(Q, k) text indices: for each query row of ``emb`` (``queries``), the ``k`` rows of ``passages``
    with the highest cosine, best first, the query's own row never among them; a query's known
    passage (``positives[i]`` >= 0) first. ``emb``: any array indexable by rows (the memory-mapped cache)."""
    passages = np.asarray(passages, dtype=np.int64)
    if len(passages) < k + 1:
        raise AlembertError(
            f"ranking needs more passages than candidates: {len(passages)} passages for {k} candidates per "
            "query; give more text or fewer candidates (embed_rank candidates)"
        )
    unit = np.asarray(emb[passages], dtype=np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True).clip(1e-12)
    where = {int(t): j for j, t in enumerate(passages)}
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), block):
        rows = np.asarray(queries[start : start + block], dtype=np.int64)
        q = np.asarray(emb[rows], dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
        scores = q @ unit.T
        for r, t in enumerate(rows):  # a query that is also a passage (the same text) is not its own candidate
            if int(t) in where:
                scores[r, where[int(t)]] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, : k + 1]
        for r in range(len(rows)):
            best = top[r][np.argsort(-scores[r, top[r]], kind="stable")]
            chosen = [int(passages[j]) for j in best if np.isfinite(scores[r, j])][:k]
            pos = int(positives[start + r]) if positives is not None else -1
            if pos >= 0:
                chosen = [pos, *[c for c in chosen if c != pos]][:k]
            out[start + r] = chosen
    return out


def mined(
    folder: Path | None, emb, queries, passages, k: int, positives=None, accelerator=None, rows_per_shard: int = 4096
) -> np.ndarray:
    """:func:`mine`, cached in the teacher's embedding-cache ``folder`` (None: not cached) as a sharded array
    (:mod:`.shards`: resumable after a kill, each process of ``accelerator`` mining its share of the
    queries), keyed by the query rows, passage rows, known passages and ``k``."""
    if folder is None:
        return mine(emb, queries, passages, k, positives)
    h = hashlib.sha256()
    for part in (queries, passages, positives if positives is not None else np.array([-2]), np.array([k])):
        h.update(np.asarray(part, dtype=np.int64).tobytes())
    queries = np.asarray(queries, dtype=np.int64)

    def part(rows: range) -> np.ndarray:
        known = positives[rows.start : rows.stop] if positives is not None else None
        return mine(emb, queries[rows.start : rows.stop], passages, k, known)

    target = Path(folder) / f"mined-{h.hexdigest()[:16]}"
    meta = {"queries": len(queries), "candidates": k}
    build(target, len(queries), part, meta, rows_per_shard=rows_per_shard, accelerator=accelerator)
    return np.asarray(read(target))


@dataclass
class QuerySet:
    """The run's texts with its queries: ``texts`` (the run's, then the queries not among them), the
    text indices of the ``queries``, of each one's known passage (``positives``, -1: none) and of the
    ``passages`` (every text that is not a query); ``pseudo``: how many queries are inverse-cloze ones."""

    texts: list[str]
    queries: np.ndarray
    positives: np.ndarray
    passages: np.ndarray
    pseudo: int

    def groups(self, emb, folder: Path | None, k: int, accelerator=None) -> np.ndarray:
        """(Q, 1 + k) text indices: each query, then its ``k`` mined candidates (cached in ``folder``)."""
        found = mined(folder, emb, self.queries, self.passages, k, self.positives, accelerator)
        return np.concatenate([self.queries[:, None], found], 1)

    def placeholder(self, k: int, seed: int) -> np.ndarray:
        """Groups of the real shape with candidates drawn at random: a dry run times steps before any mining."""
        rng = np.random.default_rng(seed)
        picks = rng.choice(self.passages, size=(len(self.queries), k))
        return np.concatenate([self.queries[:, None], picks], 1)


def query_set(texts: list[str], sources: list[str], pseudo: int, seed: int, text_column: str | None = None) -> QuerySet:
    """The :class:`QuerySet` of ``texts`` with the queries of ``sources`` and ``pseudo`` inverse-cloze ones."""
    given = load_queries(sources, text_column) if sources else []
    asked = {q for q, _ in given}
    passages_text = [t for t in texts if t not in asked]
    cloze = [(q, p) for q, p in inverse_cloze(passages_text, pseudo, seed) if q not in asked] if pseudo else []
    if pseudo and not cloze:
        raise AlembertError(
            f"--pseudo-queries {pseudo}: no passage of the run's texts has two sentences to draw a query from; "
            "give paragraphs (e.g. --corpus squad) or --queries"
        )
    pairs = given + cloze
    known = set(texts)
    everything = texts + list(dict.fromkeys(q for q, _ in pairs if q not in known))
    at = {t: i for i, t in enumerate(everything)}
    queries = np.array([at[q] for q, _ in pairs], dtype=np.int64)
    positives = np.array([at.get(p, -1) if p is not None else -1 for _, p in pairs], dtype=np.int64)
    is_query = np.zeros(len(everything), bool)
    is_query[queries] = True
    # a passage that is also a query's text stays a passage only if it is not a query
    return QuerySet(everything, queries, positives, np.flatnonzero(~is_query), len(cloze))


class QueryGroupSampler:
    """Batches of ``batch_size`` whole groups (a query's row, then its candidates' rows), the groups
    shuffled each epoch (seeded). Under several processes each batch is split between them
    (``split_batches``), so every batch holds a multiple of ``processes`` groups: the last, smaller
    batch is cut to one (at most ``processes - 1`` groups left out of an epoch)."""

    def __init__(self, groups: np.ndarray, batch_size: int, seed: int = 0, processes: int = 1):
        if batch_size % processes:
            raise AlembertError(
                f"--batch-size {batch_size} queries cannot be split between {processes} processes by whole query "
                f"groups; use a multiple of {processes}"
            )
        self.groups, self.batch_size, self.seed, self.epoch = np.asarray(groups), batch_size, seed, 0
        self.processes = processes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _used(self) -> int:
        return len(self.groups) - len(self.groups) % self.batch_size % self.processes

    def __len__(self) -> int:
        return -(-self._used() // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.groups), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        order = order[: self._used()]
        for start in range(0, len(order), self.batch_size):
            yield [int(i) for i in self.groups[order[start : start + self.batch_size].numpy()].reshape(-1)]


def group_loader(ds, tokenizer, groups: np.ndarray, batch_size: int, seed: int, processes: int = 1):
    """(DataLoader, sampler) of the query groups over the tokenised texts ``ds`` (with ``idx``), each batch
    divisible between ``processes``."""
    sampler = QueryGroupSampler(groups, batch_size, seed, processes)
    loader = DataLoader(
        ds.with_format("torch", columns=model_columns(ds)),
        batch_sampler=sampler,
        collate_fn=DataCollatorWithPadding(tokenizer),
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler
