"""TinyBERT's hidden-state (and embedding) MSE loss."""

from __future__ import annotations

import torch
from torch import nn

from alembert.errors import AlembertError
from alembert.losses._mask import masked_mean, position_mask


def hidden_mse_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    mask: torch.Tensor | None = None,
    projection: nn.Module | None = None,
) -> torch.Tensor:
    """MSE between the (projected) student hidden states and the teacher's.

    Shapes: ``student_hidden`` ``(batch, seq, Hs)``, ``teacher_hidden``
    ``(batch, seq, Ht)``, ``mask`` ``(batch, seq)`` of 1/0 (``None`` = all real).
    ``projection`` (e.g. ``nn.Linear(Hs, Ht)``, TinyBERT's learnable W_h) is
    applied to the student first; it is trained along with the student.
    Without one the widths must already match.

    Reduction: element-wise mean over the real positions and the hidden
    dimension (padding is excluded; TinyBERT's own code averaged over padding
    too). No T² scaling. The teacher is detached.

    The same loss serves TinyBERT's embedding-layer loss: in alembert's layer
    convention the embedding output is layer 0 (``hidden_states[0]``), so a
    mapping pair (0, 0) selects it; see :mod:`alembert.distill.mapping`.
    """
    if projection is not None:
        student_hidden = projection(student_hidden)
    hs, ht = student_hidden.shape[-1], teacher_hidden.shape[-1]
    if hs != ht:
        hint = "the projection's output" if projection is not None else "a projection"
        raise AlembertError(
            f"hidden-state loss: student width {hs} != teacher width {ht}; "
            f"{hint} must map {hs} to {ht} (e.g. nn.Linear({hs}, {ht}))"
        )
    if student_hidden.shape != teacher_hidden.shape:
        raise AlembertError(
            f"hidden-state loss: student hidden {tuple(student_hidden.shape)} and teacher "
            f"hidden {tuple(teacher_hidden.shape)} have different shapes"
        )
    m = position_mask(mask, student_hidden.shape[:-1], "hidden-state loss")
    per_position = ((student_hidden - teacher_hidden.detach()) ** 2).mean(dim=-1)
    return masked_mean(per_position, m)
