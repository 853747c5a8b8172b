"""MiniLM / MiniLMv2 self-attention relation loss (Wang et al. 2020, 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError
from alembert.losses._mask import mean_kl_over_real_keys, position_mask


def relation_loss(
    student_x: torch.Tensor,
    teacher_x: torch.Tensor,
    mask: torch.Tensor | None,
    num_heads: int,
) -> torch.Tensor:
    """KL(teacher ‖ student) between the self-relations of one layer's queries, keys or values.

    A relation is how each token's vector scores against every other token's
    vector of the same kind: for relation head h, ``softmax(x_h x_hᵀ / √d_h)``
    over the keys, a (seq × seq) row-stochastic map that does not depend on the
    width. That is why the student may be narrower than the teacher and, in
    MiniLMv2, have any number of attention heads.

    - MiniLM (Wang et al. 2020) adds the *value relation* of the last layer to
      its attention transfer: ``relation_loss(v_s, v_t, mask, num_attention_heads)``.
    - MiniLMv2 (Wang et al. 2021, "MiniLMv2: Multi-Head Self-Attention Relation
      Distillation for Compressing Pretrained Transformers") uses only relations:
      Q-Q, K-K and V-V of one teacher layer, each re-split into a chosen number of
      *relation heads* (the attention heads are concatenated first, then split
      again), so student and teacher need not share a head count.

    Shapes: ``student_x`` ``(batch, seq, Ws)`` and ``teacher_x`` ``(batch, seq, Wt)``,
    the projection's output with heads concatenated (what
    :func:`alembert.models.capture.capture_qkv` records). Ws and Wt may differ,
    but each must be divisible by ``num_heads``; relation head h is the slice
    ``[h·d, (h+1)·d)`` of each side, with its own d = W / num_heads and its own
    √d scale. ``mask`` ``(batch, seq)``: 1 for real tokens, 0 for padding;
    ``None`` means every position is real.

    Reduction: padded keys are masked out of the softmax (their scores set to the
    dtype's most negative value, as transformers does); the KL of each row is
    summed over the real keys, then averaged over the relation heads and the real
    query tokens of the batch. Padded positions never affect the value. No
    temperature, no T² scaling. The teacher is detached: gradients reach the
    student only. Computed with ``log_softmax`` in at least float32 (autocast is
    turned off inside), so a probability that underflows to 0 contributes 0, not NaN.

    Example::

        v_student = torch.randn(2, 5, 384)   # (batch, seq, width): 12 heads of 32
        v_teacher = torch.randn(2, 5, 768)   # 12 heads of 64
        mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
        loss = relation_loss(v_student, v_teacher, mask, num_heads=12)   # scalar >= 0
    """
    if student_x.dim() != 3 or teacher_x.dim() != 3:
        raise AlembertError(
            f"relation loss expects (batch, seq, width) vectors, got student "
            f"{tuple(student_x.shape)} and teacher {tuple(teacher_x.shape)}"
        )
    if student_x.shape[:2] != teacher_x.shape[:2]:
        raise AlembertError(
            f"relation loss: student {tuple(student_x.shape)} and teacher "
            f"{tuple(teacher_x.shape)} differ in batch or sequence length"
        )
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise AlembertError(f"relation loss: num_heads must be a positive integer, got {num_heads!r}")
    for side, width in (("student", student_x.shape[-1]), ("teacher", teacher_x.shape[-1])):
        if width % num_heads:
            raise AlembertError(
                f"relation loss: the {side} width {width} is not divisible by {num_heads} "
                f"relation heads; choose a head count that divides both widths"
            )
    batch, seq, _ = student_x.shape
    m = position_mask(mask, (batch, seq), "relation loss")
    real_key = None if m is None else (m > 0)[:, None, None, :]  # (batch, 1, 1, K)

    dtype = torch.promote_types(student_x.dtype, torch.float32)
    # the scores stay in float32 even under bf16/fp16 autocast, which would round the matmul
    with torch.autocast(device_type=student_x.device.type, enabled=False):
        log_s = _log_relation(student_x.to(dtype), num_heads, real_key)
        log_t = _log_relation(teacher_x.detach().to(dtype), num_heads, real_key)
    return mean_kl_over_real_keys(log_t.exp(), log_t, log_s, m)


def _log_relation(x: torch.Tensor, heads: int, real_key: torch.Tensor | None) -> torch.Tensor:
    """log softmax(x_h x_hᵀ / √d_h) over the real keys: ``(batch, heads, seq, seq)``."""
    batch, seq, width = x.shape
    d = width // heads
    xh = x.reshape(batch, seq, heads, d).transpose(1, 2)  # (batch, heads, seq, d)
    scores = xh @ xh.transpose(-1, -2) / math.sqrt(d)
    if real_key is not None:
        scores = scores.masked_fill(~real_key, torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)
