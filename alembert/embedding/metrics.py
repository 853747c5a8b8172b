"""Zero-shot embedding metrics: STS correlation of cosine similarities, retrieval recall and MRR."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, dim) arrays."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(1)


def sts_metrics(scores: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson correlation of predicted similarities with gold scores (the STS-B convention)."""
    return {"spearman": float(spearmanr(scores, gold).statistic), "pearson": float(pearsonr(scores, gold).statistic)}


def retrieval_metrics(
    similarity: np.ndarray, gold: np.ndarray, ks: tuple[int, ...] = (1, 10), mrr_at: int = 10
) -> dict[str, float]:
    """recall@k and MRR@k of a (queries, documents) similarity matrix, one relevant document per query.

    ``gold[i]`` is the index of query i's relevant document. The rank of the relevant document is
    1 + the number of documents scored strictly higher (ties favour the relevant one). recall@k is
    the fraction of queries whose relevant document ranks <= k; MRR@k averages 1/rank over queries,
    counting 0 where the rank is > k."""
    relevant = similarity[np.arange(len(gold)), gold]
    rank = 1 + (similarity > relevant[:, None]).sum(1)
    out = {f"recall@{k}": float((rank <= k).mean()) for k in ks}
    out[f"mrr@{mrr_at}"] = float(np.where(rank <= mrr_at, 1.0 / rank, 0.0).mean())
    return out
