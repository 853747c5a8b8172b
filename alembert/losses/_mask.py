"""Shared mask helpers for the loss functions (private)."""

from __future__ import annotations

import torch

from alembert.errors import AlembertError


def position_mask(mask: torch.Tensor | None, shape: torch.Size, what: str) -> torch.Tensor | None:
    """Check a (batch, seq) padding mask against ``shape`` and return it as float 1/0.

    ``None`` means every position is real. Bool or integer masks (1 = real token,
    0 = padding, as in HF ``attention_mask``) are accepted.
    """
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(shape):
        raise AlembertError(f"{what}: mask shape {tuple(mask.shape)} does not match the positions {tuple(shape)}")
    return (mask != 0).float()


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-position ``values`` over the positions where ``mask`` is 1.

    With no mask this is the plain mean. With an all-zero mask the result is 0
    (still connected to the graph), not NaN.
    """
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def mean_kl_over_real_keys(
    p_t: torch.Tensor,
    log_p_t: torch.Tensor,
    log_p_s: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """KL(teacher ‖ student) of row distributions, the reduction shared by MiniLM's losses.

    All three tensors are ``(batch, heads, query, key)``: the teacher's probabilities and
    both sides' log-probabilities, finite everywhere (callers clamp or mask before the log,
    so a probability of 0 contributes 0·finite = 0, never 0·log 0 = NaN). ``mask``
    ``(batch, seq)`` is already a checked float 1/0 mask or ``None`` (all real).

    Each (query, key) entry whose query or key is padding is replaced by 0 before the
    product (``torch.where``, so neither its value nor its gradient can leak); each row's
    KL is summed over the keys, then the rows are averaged over heads and the real
    queries of the whole batch (a pooled mean, like :func:`masked_mean`). An all-zero
    mask gives 0.
    """
    if mask is None:
        return (p_t * (log_p_t - log_p_s)).sum(dim=-1).mean()
    real = mask > 0
    pair = real[:, None, :, None] & real[:, None, None, :]  # (batch, 1, Q, K)
    zero = torch.zeros((), dtype=log_p_s.dtype, device=log_p_s.device)
    p_t, log_p_t, log_p_s = (torch.where(pair, x, zero) for x in (p_t, log_p_t, log_p_s))
    rows = (p_t * (log_p_t - log_p_s)).sum(dim=-1)  # (batch, heads, Q); 0 on padded queries
    return rows.sum() / (real.sum() * rows.shape[1]).clamp(min=1).to(rows.dtype)
