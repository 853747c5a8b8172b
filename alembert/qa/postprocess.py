"""Turn start/end logits over windows back into answer strings.

For each example, every window (feature) proposes spans from its ``n_best`` highest
start logits and ``n_best`` highest end logits (the scheme of BERT's ``run_squad`` and
the Hugging Face QA scripts). A span is valid when both ends are context tokens
(non-``None`` offsets), ``start <= end`` and it is at most ``max_answer_length`` tokens
long; its score is ``start_logit + end_logit``. The best valid span over all windows
of the example wins and is cut from the context with the offsets. If none of the
top-``n_best`` pairs of any window is valid, every pair is tried; an example with no
valid span at all (no context tokens) gets ``""``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def _best_in_window(start, end, offsets, n_best: int, max_answer_length: int):
    """``(score, start_char, end_char)`` of the best valid span of one window, or None."""
    n = len(offsets)
    start, end = np.asarray(start, dtype=np.float64)[:n], np.asarray(end, dtype=np.float64)[:n]
    best = None
    top_ends = np.argsort(-end, kind="stable")[:n_best]
    for s in np.argsort(-start, kind="stable")[:n_best]:
        for e in top_ends:
            if offsets[s] is None or offsets[e] is None:
                continue
            if e < s or e - s + 1 > max_answer_length:
                continue
            if best is None or start[s] + end[e] > best[0]:
                best = (start[s] + end[e], offsets[s][0], offsets[e][1])
    if best is None:  # no valid top-n pair: try every pair
        ctx = np.array([o is not None for o in offsets])
        s_idx, e_idx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        valid = ctx[:, None] & ctx[None, :] & (e_idx >= s_idx)
        valid &= e_idx - s_idx < max_answer_length
        if valid.any():
            scores = np.where(valid, start[:, None] + end[None, :], -np.inf)
            s, e = np.unravel_index(np.argmax(scores), scores.shape)
            best = (scores[s, e], offsets[s][0], offsets[e][1])
    return best


def postprocess_predictions(
    examples, features, start_logits, end_logits, n_best: int = 20, max_answer_length: int = 30
) -> dict[str, str]:
    """Best answer text per example id.

    ``examples``: rows with ``id`` and ``context`` (a Dataset or a list of dicts).
    ``features``: the windows from :func:`~alembert.qa.features.prepare_eval_features`,
    with ``example_id`` and ``offset_mapping``. ``start_logits`` / ``end_logits``: one row
    of logits per feature, in the same order (a 2-D array padded past each window's
    length, or a list of 1-D arrays).
    """
    by_example = defaultdict(list)
    for i, example_id in enumerate(features["example_id"]):
        by_example[example_id].append(i)
    offsets = features["offset_mapping"]
    answers = {}
    for example in examples:
        best = None
        for i in by_example.get(example["id"], []):
            cand = _best_in_window(start_logits[i], end_logits[i], offsets[i], n_best, max_answer_length)
            if cand is not None and (best is None or cand[0] > best[0]):
                best = cand
        answers[example["id"]] = "" if best is None else example["context"][best[1] : best[2]]
    return answers
