"""Batched inference in length order (dynamic padding), results in dataset order."""

from __future__ import annotations

import numpy as np
import torch

from alembert.data.batching import eval_batches


@torch.inference_mode()
def predict_logits(model, ds, tokenizer, batch_size: int = 128, device: str | torch.device | None = None) -> np.ndarray:
    """Logits (N, C) of a sequence-classification model over a tokenised dataset."""
    was_training = model.training
    model.eval()
    device = device or getattr(model, "device", None) or next(model.parameters()).device  # .device: HF or ONNX models
    out: np.ndarray | None = None
    for idx, batch in eval_batches(ds, tokenizer, batch_size):
        batch.pop("labels", None)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(ds), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
    model.train(was_training)
    return out if out is not None else np.zeros((0, 1), dtype=np.float32)
