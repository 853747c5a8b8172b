"""Ranking distillation: the student learns the teacher's *ordering* of a query's candidates.

Matching vectors (``embed_mse``) spends the student's capacity evenly on every direction of the
teacher's space; search only needs the few passages near each query to come out in the teacher's
order. Both losses here score a query against its candidates (the passages the teacher itself
ranks highest for it, mined from the run's texts) by cosine similarity, on each side:

- :func:`ranking_kl_loss`: listwise, ``KL(teacher || student)`` between the two softmax
  distributions over the candidates at a temperature (RocketQAv2's dynamic listwise distillation,
  with the teacher's distribution as the target);
- :func:`margin_mse_loss`: Hofstätter et al. 2020's Margin-MSE, the squared error between the
  student's and the teacher's score *margins* (first candidate minus each other one): only
  differences are matched, so the student's scores may sit at another level than the teacher's.

Shapes: queries ``(batch, dim)``, candidates ``(batch, k, dim)``, the student's and the teacher's
widths may differ (only scores are compared); ``mask`` ``(batch, k)`` is True for the candidates
that exist (a query with fewer than k is padded). The teacher side is detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError


def _scores(queries: torch.Tensor, candidates: torch.Tensor, what: str) -> torch.Tensor:
    if queries.dim() != 2 or candidates.dim() != 3 or candidates.shape[0] != queries.shape[0]:
        raise AlembertError(
            f"{what}: expected queries (batch, dim) and candidates (batch, k, dim), got {tuple(queries.shape)} "
            f"and {tuple(candidates.shape)}"
        )
    if candidates.shape[2] != queries.shape[1]:
        raise AlembertError(
            f"{what}: queries have {queries.shape[1]} dimensions and their candidates {candidates.shape[2]}"
        )
    return torch.einsum("bd,bkd->bk", F.normalize(queries, dim=-1), F.normalize(candidates, dim=-1))


def _mask(mask: torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(scores, dtype=torch.bool)
    if mask.shape != scores.shape:
        raise AlembertError(f"ranking loss: mask {tuple(mask.shape)} does not match the scores {tuple(scores.shape)}")
    return mask.bool()


def ranking_kl_loss(
    student_q: torch.Tensor,
    student_c: torch.Tensor,
    teacher_q: torch.Tensor,
    teacher_c: torch.Tensor,
    temperature: float = 0.05,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(teacher ‖ student) between softmax distributions over each query's candidates.

    ``p_b = softmax_j(cos(q_b, c_bj) / T)`` over the candidates ``j`` with ``mask[b, j]``, on each
    side; the loss is ``sum_j p_teacher_bj (log p_teacher_bj - log p_student_bj)``, averaged over the
    queries with at least two candidates (one candidate is no ordering). Reduction: mean over queries.

    Example::

        >>> q = torch.tensor([[1.0, 0.0]]); c = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> float(ranking_kl_loss(q, c, q, c))
        0.0
    """
    if temperature <= 0:
        raise AlembertError(f"ranking kl loss: temperature must be > 0, got {temperature}")
    s = _scores(student_q, student_c, "ranking kl loss")
    t = _scores(teacher_q.detach(), teacher_c.detach(), "ranking kl loss")
    if s.shape != t.shape:
        raise AlembertError(f"ranking kl loss: student scores {tuple(s.shape)}, teacher scores {tuple(t.shape)}")
    keep = _mask(mask, s)
    # a finite floor, not -inf: a row with no candidate would give NaN, and NaN gradients, even when left out
    log_s = F.log_softmax((s / temperature).masked_fill(~keep, -1e4), dim=-1)
    log_t = F.log_softmax((t / temperature).masked_fill(~keep, -1e4), dim=-1)
    per = (log_t.exp() * (log_t - log_s)).masked_fill(~keep, 0.0).sum(-1)
    ranked = keep.sum(-1) >= 2
    return per[ranked].mean() if ranked.any() else s.sum() * 0.0


def margin_mse_loss(
    student_q: torch.Tensor,
    student_c: torch.Tensor,
    teacher_q: torch.Tensor,
    teacher_c: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Margin-MSE: ``(s_b0 - s_bj) - (t_b0 - t_bj)`` squared, for every other candidate ``j`` that exists.

    Scores are cosine similarities; candidate 0 is the reference (the teacher's best, or the query's
    known passage). Reduction: mean over the (query, candidate) margins that exist.

    Example::

        >>> q = torch.tensor([[1.0, 0.0]]); c = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> float(margin_mse_loss(q, c, q, c))
        0.0
    """
    s = _scores(student_q, student_c, "margin mse loss")
    t = _scores(teacher_q.detach(), teacher_c.detach(), "margin mse loss")
    keep = _mask(mask, s)
    margins = keep[:, 1:] & keep[:, :1]
    diff = (s[:, :1] - s[:, 1:]) - (t[:, :1] - t[:, 1:])
    return diff.pow(2)[margins].mean() if margins.any() else s.sum() * 0.0
