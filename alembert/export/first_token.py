"""The last encoder layer of a [CLS] classifier, computed for the first token only.

A BERT sequence classifier reads one vector of the last layer: the first token's,
through the pooler. In that layer every other position's query, attention output
and feed-forward pass is work whose result is thrown away; keys and values are still
needed for all positions. :func:`first_token_last_layer` swaps the last layer for one
that computes exactly what the pooler reads, so an exported graph spends nothing on the
rest (the logits are unchanged, up to float rounding). Used by ``alembert export``
for BERT-architecture classifiers; other families keep their full last layer.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import eager_attention_forward

FAMILIES = ("bert",)  # BertForSequenceClassification: pooler over token 0, BertLayer internals


class FirstTokenLayer(nn.Module):
    """A ``BertLayer`` whose output is its first position only: shape (batch, 1, hidden)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs
    ) -> torch.Tensor:
        attention = self.layer.attention
        heads = attention.self
        batch, seq = hidden_states.shape[:2]
        first = hidden_states[:, :1]

        def split(x, length):
            return x.view(batch, length, -1, heads.attention_head_size).transpose(1, 2)

        query = split(heads.query(first), 1)
        key, value = split(heads.key(hidden_states), seq), split(heads.value(hidden_states), seq)
        if attention_mask is not None and attention_mask.dim() == 4:
            attention_mask = attention_mask[:, :, :1, :]  # the first query's row
        kernel = ALL_ATTENTION_FUNCTIONS.get_interface(heads.config._attn_implementation, eager_attention_forward)
        context, _ = kernel(heads, query, key, value, attention_mask, dropout=0.0, scaling=heads.scaling)
        context = attention.output(context.reshape(batch, 1, -1), first)
        return self.layer.feed_forward_chunk(context)


def first_token_last_layer(model: nn.Module) -> bool:
    """Swap ``model``'s last encoder layer for a :class:`FirstTokenLayer` in place (eval use
    only); returns whether it did (BERT-architecture sequence classifiers)."""
    if model.config.model_type not in FAMILIES or not hasattr(model, "bert") or model.bert.pooler is None:
        return False
    layers = model.bert.encoder.layer
    if not isinstance(layers[-1], FirstTokenLayer):
        layers[-1] = FirstTokenLayer(layers[-1])
    return True
