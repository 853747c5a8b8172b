"""A masked-LM model from an encoder checkpoint, with the head the checkpoint lacks tied to its embeddings.

BERT's and MPNet's masked-LM heads project back onto the vocabulary with the input embedding
matrix (the decoder weight *is* the word-embedding table), so a head added to an encoder that
shipped without one starts with a meaningful output layer: only its transform (dense, GELU,
LayerNorm) and a vocabulary bias are new. :func:`load_masked_lm` refuses a checkpoint whose
encoder itself is incomplete (only head weights may be missing) and ties the decoder even when
the config says not to, so the adapted model stays a BERT-style masked LM.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForMaskedLM

from alembert.errors import AlembertError
from alembert.models.load import quiet_from_pretrained
from alembert.models.resolve import resolve_model


def prediction_head(model) -> torch.nn.Module | None:
    """The module that maps the encoder's hidden states (any leading shape, last dim ``hidden``) to
    vocabulary logits (BERT's ``cls``, MPNet's and RoBERTa's ``lm_head``), or None when the
    family spreads its head over several modules (DistilBERT): then the model's own forward is used."""
    heads = [
        m for name, m in model.named_children() if name != model.base_model_prefix and any(True for _ in m.parameters())
    ]
    out = model.get_output_embeddings()
    if len(heads) == 1 and out is not None and any(m is out for m in heads[0].modules()):
        return heads[0]
    return None


def is_tied(model) -> bool:
    """True when the output (decoder) weight is the input embedding table itself."""
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def load_masked_lm(name: str) -> tuple[torch.nn.Module, list[str]]:
    """(the masked-LM model of ``name``, the names of the head weights the checkpoint lacked and that
    start fresh). The decoder is tied to the input embeddings."""
    path = resolve_model(name)
    model, info = quiet_from_pretrained(
        AutoModelForMaskedLM,
        path,
        f"model {name}",
        hint="adapt-mlm needs a BERT-style encoder (BERT, MPNet, RoBERTa, DistilBERT ...)",
        output_loading_info=True,
    )
    missing = sorted(k for k in info["missing_keys"] if not k.endswith("position_ids"))
    encoder = [k for k in missing if k.startswith(model.base_model_prefix + ".")]
    if encoder:
        raise AlembertError(
            f"model {name}: its encoder weight {encoder[0]} (and {len(encoder) - 1} more) is not in the checkpoint; "
            "adapt-mlm adapts a pretrained encoder: pass a folder with its weights"
        )
    if not is_tied(model):
        model.config.tie_word_embeddings = True
        model.tie_weights()
    if not is_tied(model):
        raise AlembertError(
            f"model {name}: its masked-LM decoder cannot be tied to the input embeddings; adapt-mlm needs a "
            "BERT-style head"
        )
    return model, missing
