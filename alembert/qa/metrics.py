"""The official SQuAD v1.1 evaluation (``evaluate-v1.1.py``), re-implemented.

Answers are normalised (lower case, punctuation removed, the articles a/an/the
removed, whitespace collapsed); exact match and token-level F1 are taken against
each gold answer, the max over gold answers kept, and both averaged over the
reference questions, times 100. As in the official script, a reference question
without a prediction scores 0, and predictions for unknown ids are ignored.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from alembert.errors import AlembertError

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, remove punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 of the normalised answers (0 when they share no token)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _gold(references) -> dict[str, list[str]]:
    if isinstance(references, dict):
        return {k: list(v["text"] if isinstance(v, dict) else v) for k, v in references.items()}
    return {r["id"]: list(r["answers"]["text"]) for r in references}


def squad_metrics(predictions: dict[str, str], references) -> dict[str, float]:
    """``{"exact_match", "f1"}`` (0-100) of ``predictions`` (id -> answer text).

    ``references``: a dataset (or list of rows) with ``id`` and ``answers`` columns as
    from :mod:`alembert.data.squad`, or a dict id -> list of gold texts.
    """
    gold = _gold(references)
    if not gold:
        raise AlembertError("no reference questions to score; pass a non-empty SQuAD dataset")
    em = f1 = 0.0
    for qid, answers in gold.items():
        if qid not in predictions or not answers:
            continue
        em += max(exact_match_score(predictions[qid], g) for g in answers)
        f1 += max(f1_score(predictions[qid], g) for g in answers)
    return {"exact_match": 100.0 * em / len(gold), "f1": 100.0 * f1 / len(gold)}
