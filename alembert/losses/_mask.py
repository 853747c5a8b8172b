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
        raise AlembertError(
            f"{what}: mask shape {tuple(mask.shape)} does not match the positions {tuple(shape)}"
        )
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
