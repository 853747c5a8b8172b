"""MiniLM's attention-transfer loss: KL between attention distributions (Wang et al. 2020)."""

from __future__ import annotations

import torch

from alembert.errors import AlembertError
from alembert.losses._mask import mean_kl_over_real_keys, position_mask


def attention_kl_loss(
    student_attn: torch.Tensor,
    teacher_attn: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """KL(teacher ‖ student) between the attention distributions of one layer pair.

    MiniLM (Wang et al. 2020, "MiniLM: Deep Self-Attention Distillation for
    Task-Agnostic Compression of Pre-Trained Transformers") transfers the
    teacher's *last*-layer self-attention to the student's last layer: each
    query's attention over the keys is a distribution, and the student learns to
    match it in KL, head by head. Because only the (seq × seq) maps are compared,
    the student may be narrower than the teacher; the head counts must be equal.

    Shapes: ``student_attn`` and ``teacher_attn`` ``(batch, heads, query, key)``
    post-softmax probabilities (what transformers returns with
    ``output_attentions=True``; it needs ``attn_implementation="eager"``),
    query == key == seq. ``mask`` ``(batch, seq)``: 1 for real tokens, 0 for
    padding (HF ``attention_mask``); ``None`` means every position is real.

    Reduction: KL summed over the real keys of each row, averaged over heads and
    over the real query tokens of the batch. Entries at padded queries or keys
    are ignored, not renormalised: maps computed with the same padding mask
    already give padded keys (numerically) zero probability. No temperature, no
    T² scaling. The teacher is detached.

    Numerics: probabilities are clamped to the dtype's smallest normal number
    before the log, so a teacher 0 contributes 0 (not 0·log 0 = NaN) and a
    student that underflowed to 0 contributes a large but finite term. The loss
    is computed in at least float32.

    Example::

        s = torch.softmax(torch.randn(2, 4, 5, 5), -1)   # (batch, heads, seq, seq)
        t = torch.softmax(torch.randn(2, 4, 5, 5), -1)
        mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
        loss = attention_kl_loss(s, t, mask)             # scalar >= 0; 0 when s == t
    """
    if student_attn.dim() != 4 or teacher_attn.dim() != 4:
        raise AlembertError(
            f"attention KL loss expects (batch, heads, query, key) maps, got student "
            f"{tuple(student_attn.shape)} and teacher {tuple(teacher_attn.shape)}"
        )
    if student_attn.shape[1] != teacher_attn.shape[1]:
        raise AlembertError(
            f"attention KL loss needs equal head counts, got student {student_attn.shape[1]} "
            f"heads and teacher {teacher_attn.shape[1]}; use a student with "
            f"{teacher_attn.shape[1]} heads, or relation losses (any head count)"
        )
    if student_attn.shape != teacher_attn.shape:
        raise AlembertError(
            f"attention KL loss: student maps {tuple(student_attn.shape)} and teacher maps "
            f"{tuple(teacher_attn.shape)} have different shapes"
        )
    batch, _, q, k = student_attn.shape
    if q != k:
        raise AlembertError(f"attention KL loss needs square self-attention maps, got {q}x{k}")
    m = position_mask(mask, (batch, q), "attention KL loss")

    dtype = torch.promote_types(student_attn.dtype, torch.float32)
    p_s = student_attn.to(dtype)
    p_t = teacher_attn.detach().to(dtype)
    if m is not None:  # padded entries become harmless constants before the log
        pair = (m[:, None, :, None] * m[:, None, None, :]) > 0
        p_s = torch.where(pair, p_s, torch.ones((), dtype=dtype, device=p_s.device))
        p_t = torch.where(pair, p_t, torch.zeros((), dtype=dtype, device=p_t.device))
    tiny = torch.finfo(dtype).tiny
    return mean_kl_over_real_keys(p_t, p_t.clamp_min(tiny).log(), p_s.clamp_min(tiny).log(), m)
