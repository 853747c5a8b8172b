"""What a model's prediction heads returned, whatever the head: the logits every logit term and cache reads."""

from __future__ import annotations

import torch


def output_logits(out) -> list[torch.Tensor]:
    """The prediction heads' outputs: [logits], [start_logits, end_logits] for QA, [] for a bare encoder."""
    if getattr(out, "logits", None) is not None:
        return [out.logits]
    if getattr(out, "start_logits", None) is not None:
        return [out.start_logits, out.end_logits]
    return []
