"""The module a supervised (fine-tuning) run trains: the model with its own task loss, in the
``forward(batch) -> (loss, terms)`` shape the training loop expects of every module."""

from __future__ import annotations

import torch


class SupervisedModule(torch.nn.Module):
    """``forward(batch) -> (loss, terms)`` with the model's own task loss (CE, or MSE for regression)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        loss = self.model(**batch).loss
        return loss, {"task": loss.detach()}
