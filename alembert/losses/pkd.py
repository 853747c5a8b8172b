"""Patient-KD loss on intermediate [CLS] states (Sun et al. 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError


def pkd_loss(
    student_cls_list: Sequence[torch.Tensor],
    teacher_cls_list: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Mean squared distance between L2-normalised [CLS] states of mapped layers.

    Arguments: equal-length lists (one entry per mapped layer pair, in mapping
    order) of ``(batch, H)`` [CLS] hidden states; student and teacher widths must
    match (Patient KD keeps the teacher's width).
    Computation, as in the official PKD code: stack each list into
    ``(batch, n_pairs, H)``, L2-normalise every vector along H, then take the
    element-wise mean squared error (mean over batch, pairs and H). No mask
    ([CLS] is always a real token) and no T² scaling. The teacher is detached.
    Because normalised vectors are short, the loss is small: the paper weights
    it by β in the hundreds.
    """
    if len(student_cls_list) != len(teacher_cls_list):
        raise AlembertError(
            f"pkd loss: {len(student_cls_list)} student layers but "
            f"{len(teacher_cls_list)} teacher layers; the lists must pair up"
        )
    if len(student_cls_list) == 0:
        raise AlembertError("pkd loss needs at least one mapped layer pair, got none")
    student = torch.stack(list(student_cls_list), dim=1)
    teacher = torch.stack([t.detach() for t in teacher_cls_list], dim=1)
    if student.shape[-1] != teacher.shape[-1]:
        raise AlembertError(
            f"pkd loss needs equal hidden widths, got student {student.shape[-1]} and teacher {teacher.shape[-1]}"
        )
    if student.shape != teacher.shape:
        raise AlembertError(
            f"pkd loss: stacked student states {tuple(student.shape)} and teacher states "
            f"{tuple(teacher.shape)} have different shapes"
        )
    student = F.normalize(student, p=2, dim=-1)
    teacher = F.normalize(teacher, p=2, dim=-1)
    return F.mse_loss(student, teacher)
