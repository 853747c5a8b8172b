"""Soft-target knowledge-distillation loss (Hinton et al. 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError
from alembert.losses._mask import masked_mean, position_mask


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(softmax(t/T) ‖ softmax(s/T)) × T², the soft-target loss of KD.

    Shapes: ``(batch, C)`` or ``(batch, seq, C)``; student and teacher must match.
    ``mask`` (optional) has the shape of the logits without the class axis, e.g.
    ``(batch, seq)``, with 1 for positions to distil and 0 to skip; DistilBERT's
    MLM-vocabulary KD passes ``labels != -100`` here to distil masked tokens only.

    Reduction: KL is summed over classes, then averaged over the batch (and over
    the unmasked positions for 3-D inputs); an all-zero mask gives 0.
    T² scaling: yes, so gradient magnitudes do not shrink as T grows (Hinton;
    DistilBERT and Patient KD use the same scaling).

    Regression (1-D inputs, or a class axis of size 1): the loss is the mean
    squared error between the outputs; temperature is not used.

    The teacher's logits are detached: no gradient ever reaches the teacher.
    """
    if student_logits.shape != teacher_logits.shape:
        raise AlembertError(
            f"kd loss: student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} have different shapes (same number of labels?)"
        )
    if temperature <= 0:
        raise AlembertError(f"kd loss: temperature must be > 0, got {temperature}")
    teacher_logits = teacher_logits.detach()

    if student_logits.dim() == 1 or student_logits.shape[-1] == 1:  # regression
        squeeze = student_logits.dim() > 1  # drop the size-1 output axis
        s = student_logits.squeeze(-1) if squeeze else student_logits
        t = teacher_logits.squeeze(-1) if squeeze else teacher_logits
        m = position_mask(mask, s.shape, "kd loss")
        return masked_mean((s - t) ** 2, m)

    m = position_mask(mask, student_logits.shape[:-1], "kd loss")
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)  # one value per row/position
    return masked_mean(kl, m) * temperature**2
