"""DistilBERT's cosine-embedding loss between hidden states."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError
from alembert.losses._mask import masked_mean, position_mask


def cosine_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of 1 − cos(student, teacher) over the real (non-padding) positions.

    Shapes: hidden states ``(batch, seq, H)`` of equal width H (DistilBERT keeps
    the teacher's width, so no projection); ``mask`` ``(batch, seq)`` of 1/0
    (HF ``attention_mask``), ``None`` = every position is real.
    Reduction: the cosine is taken along H for each position, then averaged over
    the positions where mask is 1. Padding values never affect the loss.
    No T² scaling. The teacher is detached.
    """
    if student_hidden.shape[-1] != teacher_hidden.shape[-1]:
        raise AlembertError(
            f"cosine loss needs equal hidden widths, got student {student_hidden.shape[-1]} "
            f"and teacher {teacher_hidden.shape[-1]}"
        )
    if student_hidden.shape != teacher_hidden.shape:
        raise AlembertError(
            f"cosine loss: student hidden {tuple(student_hidden.shape)} and teacher hidden "
            f"{tuple(teacher_hidden.shape)} have different shapes"
        )
    m = position_mask(mask, student_hidden.shape[:-1], "cosine loss")
    cos = F.cosine_similarity(student_hidden, teacher_hidden.detach(), dim=-1)
    return masked_mean(1.0 - cos, m)
