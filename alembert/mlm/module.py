"""The module ``adapt-mlm`` trains: masked-LM cross-entropy at the masked positions only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alembert.mlm.model import prediction_head


class MaskedLMModule(torch.nn.Module):
    """``forward(batch) -> (loss, terms)``: the mean cross-entropy of the masked tokens.

    Only the masked positions (15% of the tokens, labels != -100) go through the head: the
    vocabulary projection (hidden x ~30k) is the costliest matrix product of a base-size model's
    masked-LM step when computed at every position, as the plain ``ForMaskedLM`` forward does.

    ``frozen_encoder``: the encoder (and the tied embedding table the decoder shares) gets no
    gradient, so only the head's transform and bias learn: the first stage of adaptation, where a
    fresh head would otherwise send large gradients into the pretrained encoder. The flags are set
    when the stage's optimiser is built (``make_optimizer`` calls :meth:`select_trainable`), so two
    stages' modules over one model do not depend on which was built last.

    Example::

        module = MaskedLMModule(model, frozen_encoder=True)
        loss, terms = module(collator(rows))  # rows from alembert.data.corpus.pack_sentences
    """

    def __init__(self, model, frozen_encoder: bool = False):
        super().__init__()
        self.model = model
        self.frozen_encoder = frozen_encoder
        self.select_trainable()

    @property
    def head(self) -> torch.nn.Module | None:
        """The model's own head (not a second registration: the state dict holds each weight once)."""
        return prediction_head(self.model)

    def select_trainable(self) -> None:
        """Set which parameters learn in this stage (called by ``make_optimizer``)."""
        self.model.requires_grad_(True)
        if self.frozen_encoder:
            self.model.base_model.requires_grad_(False)  # the tied decoder weight is the embedding table: frozen too

    def masked_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits ``[n_masked, vocab]``, labels ``[n_masked]``) of a collated batch with ``labels``."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        picked = batch["labels"] != -100
        if self.head is None:
            return self.model(**inputs).logits[picked], batch["labels"][picked]
        hidden = self.model.base_model(**inputs).last_hidden_state
        return self.head(hidden[picked]), batch["labels"][picked]

    def forward(self, batch):
        logits, labels = self.masked_logits(batch)
        loss = F.cross_entropy(logits.float(), labels) if len(labels) else logits.sum() * 0.0
        return loss, {"mlm": loss.detach()}
