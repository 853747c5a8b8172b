"""Sentence-embedding distillation: the student's sentence vectors learn the teacher's.

Three views of "the same embedding", from strict to loose:

- :func:`embedding_mse_loss` matches the vectors themselves (Reimers & Gurevych 2020,
  "Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation": the
  objective of sentence-transformers' ``MSELoss``). It needs the two spaces to have the
  same width, which a student's Dense projection provides.
- :func:`embedding_cosine_loss` matches their directions only: cosine similarity is all
  that retrieval and STS use, so the norm is a degree of freedom the student need not fit.
- :func:`similarity_kl_loss` matches the *relations* within a batch: each sentence's
  softmax distribution over the other sentences' similarities, the student's against the
  teacher's (in-batch KL over similarities, as in contrastive distillation). It never
  compares vectors across the two spaces, so the widths may differ and no projection is
  needed: only the geometry is transferred.

All three take pooled embeddings ``(batch, dim)``; the teacher side is detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError


def _check(student: torch.Tensor, teacher: torch.Tensor, what: str, same_width: bool = True) -> None:
    if student.dim() != 2 or teacher.dim() != 2 or student.shape[0] != teacher.shape[0]:
        raise AlembertError(
            f"{what}: "
            f"expected (batch, dim) embeddings of one batch, got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if same_width and student.shape[1] != teacher.shape[1]:
        raise AlembertError(
            f"{what}: student embeddings have {student.shape[1]} dimensions and the teacher's {teacher.shape[1]}; "
            "give the student a projection to the teacher's width (the default) or use the embed-sim recipe"
        )


def embedding_mse_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Mean squared error between student and teacher sentence embeddings.

    Shapes: ``(batch, dim)`` both. Reduction: mean over batch and dimensions (as
    ``torch.nn.MSELoss``, the reduction of sentence-transformers' ``MSELoss``).

    Example::

        >>> s = torch.tensor([[1.0, 0.0]]); t = torch.tensor([[0.0, 0.0]])
        >>> float(embedding_mse_loss(s, t))
        0.5
    """
    _check(student_emb, teacher_emb, "embedding mse loss")
    return F.mse_loss(student_emb, teacher_emb.detach())


def embedding_cosine_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """``1 - cos(student, teacher)`` per sentence, averaged over the batch.

    Shapes: ``(batch, dim)`` both. Reduction: mean over the batch. Range [0, 2]; 0 when
    every student vector points where its teacher vector does (any length).

    Example::

        >>> float(embedding_cosine_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]])))
        0.0
    """
    _check(student_emb, teacher_emb, "embedding cosine loss")
    return (1 - F.cosine_similarity(student_emb, teacher_emb.detach(), dim=-1)).mean()


def similarity_kl_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """KL(teacher ‖ student) between the in-batch similarity distributions.

    For each sentence i, ``p_i = softmax_j(cos(e_i, e_j) / T)`` over the *other* sentences
    j != i of the batch (the diagonal is left out: it is 1 on both sides and would only
    dilute the signal), on each side; the loss is ``KL(p_teacher_i ‖ p_student_i)`` summed
    over j and averaged over i. A small T (0.05, the usual contrastive temperature) makes
    the distributions sharp, so the nearest neighbours dominate, as in retrieval.

    Shapes: ``(batch, dim_s)`` and ``(batch, dim_t)``: the widths may differ. A batch of
    one sentence gives 0 (no neighbours). Reduction: mean over the batch's sentences.

    Example::

        >>> e = torch.eye(3)
        >>> float(similarity_kl_loss(e, e))
        0.0
    """
    _check(student_emb, teacher_emb, "similarity kl loss", same_width=False)
    if temperature <= 0:
        raise AlembertError(f"similarity kl loss: temperature must be > 0, got {temperature}")
    n = student_emb.shape[0]
    if n < 2:
        return student_emb.sum() * 0.0
    off_diag = ~torch.eye(n, dtype=torch.bool, device=student_emb.device)

    def log_probs(e: torch.Tensor) -> torch.Tensor:
        e = F.normalize(e, dim=-1)
        sim = (e @ e.T / temperature)[off_diag].view(n, n - 1)
        return F.log_softmax(sim, dim=-1)

    log_s, log_t = log_probs(student_emb), log_probs(teacher_emb.detach())
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()
