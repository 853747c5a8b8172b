"""Hard-label losses: the task loss on gold labels, and the masked-LM loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError

IGNORE_INDEX = -100


def hard_label_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Loss of the student's predictions against the gold labels.

    Classification: logits ``(batch, C)`` with C > 1, labels ``(batch,)`` int64;
    cross-entropy averaged over the labels that are not -100 (ignored).
    Regression: logits ``(batch, 1)`` or ``(batch,)``, labels ``(batch,)`` float;
    mean squared error (as HF does for ``num_labels == 1``) over the labels that are not NaN:
    a transfer row has no gold score, only the teacher's (NaN is regression's -100).
    No temperature, no T² scaling. A batch with no label to learn from gives 0 (still in
    the graph, so a step on a batch of transfer rows only back-propagates the other terms).

    Example::

        >>> hard_label_loss(torch.tensor([[1.0], [5.0]]), torch.tensor([2.0, float("nan")]))
        tensor(1.)
    """
    if student_logits.dim() == 1 or (student_logits.dim() == 2 and student_logits.shape[1] == 1):
        preds = student_logits.reshape(-1)
        if labels.numel() != preds.numel():
            raise AlembertError(f"regression loss: {preds.numel()} predictions but {labels.numel()} labels")
        target = labels.reshape(-1).to(preds.dtype)
        known = ~torch.isnan(target)
        if bool(known.all()):
            return F.mse_loss(preds, target)
        return F.mse_loss(preds[known], target[known]) if bool(known.any()) else preds.sum() * 0.0

    if labels.is_floating_point():
        raise AlembertError(
            f"classification loss: labels must be integer class ids, got {labels.dtype} "
            f"(for regression the model needs a single output, it has {student_logits.shape[-1]})"
        )
    if tuple(labels.shape) != tuple(student_logits.shape[:-1]):
        raise AlembertError(
            f"classification loss: logits {tuple(student_logits.shape)} do not fit labels {tuple(labels.shape)}"
        )
    return _ce(student_logits, labels)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Masked-language-model loss: cross-entropy over the vocabulary.

    ``logits`` ``(batch, seq, V)``, ``labels`` ``(batch, seq)`` int64 with -100 at
    positions that were not masked (they are ignored). Averaged over the
    predicted positions; 0 if there are none. No T² scaling.
    """
    if logits.dim() != 3 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise AlembertError(
            f"mlm loss: expected logits (batch, seq, vocab) and labels (batch, seq), got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    return _ce(logits, labels)


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy ignoring -100, returning a graph-connected 0 if nothing is labelled."""
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_labels = labels.reshape(-1)
    if not (flat_labels != IGNORE_INDEX).any():
        return flat_logits.sum() * 0.0
    return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
