"""TinyBERT's attention-map MSE loss for one mapped layer pair."""

from __future__ import annotations

import torch

from alembert.errors import AlembertError
from alembert.losses._mask import position_mask


def attention_loss(
    student_attn: torch.Tensor,
    teacher_attn: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between student and teacher attention maps of one layer pair.

    Shapes: ``(batch, heads, Q, K)`` for both (self-attention, so Q == K ==
    seq); head counts must be equal (TinyBERT compares head by head).
    ``mask`` ``(batch, seq)`` of 1/0 (``None`` = all real).
    Reduction: element-wise mean over heads and the entries whose query AND key
    are both real tokens; padded rows and columns are ignored.
    No T² scaling. The teacher is detached.

    What the maps are: HF ``transformers`` returns post-softmax attention
    *probabilities* (``output_attentions=True``, and only with
    ``attn_implementation="eager"``; SDPA/flash kernels return none).
    The TinyBERT paper and code used the pre-softmax *scores* (with masked
    entries, which carry -10000, zeroed before the MSE). This function works on
    either, but with probabilities every entry lies in [0, 1], so the loss is
    bounded and much smaller than on scores: its weight may need raising.
    """
    if student_attn.dim() != 4 or teacher_attn.dim() != 4:
        raise AlembertError(
            f"attention loss expects (batch, heads, query, key) maps, got student "
            f"{tuple(student_attn.shape)} and teacher {tuple(teacher_attn.shape)}"
        )
    if student_attn.shape[1] != teacher_attn.shape[1]:
        raise AlembertError(
            f"attention loss needs equal head counts, got student {student_attn.shape[1]} "
            f"heads and teacher {teacher_attn.shape[1]} heads"
        )
    if student_attn.shape != teacher_attn.shape:
        raise AlembertError(
            f"attention loss: student maps {tuple(student_attn.shape)} and teacher maps "
            f"{tuple(teacher_attn.shape)} have different shapes"
        )
    batch, heads, q, k = student_attn.shape
    sq = (student_attn - teacher_attn.detach()) ** 2
    if mask is None:
        return sq.mean()
    if q != k:
        raise AlembertError(f"attention loss: a padding mask needs square maps, got {q}x{k}")
    m = position_mask(mask, (batch, q), "attention loss").to(sq.dtype)
    pair = m[:, None, :, None] * m[:, None, None, :]  # (batch, 1, Q, K): query and key real
    count = (pair.sum() * heads).clamp(min=1.0)
    return (sq * pair).sum() / count
