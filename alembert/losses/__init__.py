"""Distillation losses, one pure function per module.

Recipes compose losses by name with weights, as data; each name is one term of
:mod:`alembert.terms`, which says what the function needs and calls it.

=============  ==========================================  ============
term           function                                    method
=============  ==========================================  ============
``kd``         :func:`kd_loss` (soft targets, × T²)        all three
``ce``         :func:`hard_label_loss` (CE or MSE)         all three
``mlm``        :func:`mlm_loss`                            DistilBERT
``cosine``     :func:`cosine_loss`                         DistilBERT
``hidden_mse`` :func:`hidden_mse_loss`                     TinyBERT
``attention``  :func:`attention_loss`                      TinyBERT
``pkd``        :func:`pkd_loss`                            Patient KD
``embed_*``    :mod:`.embedding` (MSE, cosine, batch KL)    embeddings
=============  ==========================================  ============

MiniLM's terms (:mod:`alembert.terms.relation`): ``attention_kl`` is
:func:`attention_kl_loss` (attention transfer), ``value_relation`` and
``qkv_relation`` are :func:`relation_loss` (MiniLM's value relation, MiniLMv2's
Q-Q + K-K + V-V) on queries, keys and values recorded by
:func:`alembert.models.capture.capture_keys`.

Every function detaches the teacher's tensors.
"""

from __future__ import annotations

from alembert.losses.attention import attention_loss
from alembert.losses.attention_kl import attention_kl_loss
from alembert.losses.ce import hard_label_loss, mlm_loss
from alembert.losses.cosine import cosine_loss
from alembert.losses.embedding import embedding_cosine_loss, embedding_mse_loss, similarity_kl_loss
from alembert.losses.hidden import hidden_mse_loss
from alembert.losses.kd import kd_loss
from alembert.losses.pkd import pkd_loss
from alembert.losses.ranking import margin_mse_loss, ranking_kl_loss
from alembert.losses.relation import relation_loss

__all__ = [
    "attention_kl_loss",
    "attention_loss",
    "cosine_loss",
    "embedding_cosine_loss",
    "embedding_mse_loss",
    "hard_label_loss",
    "hidden_mse_loss",
    "kd_loss",
    "margin_mse_loss",
    "mlm_loss",
    "pkd_loss",
    "ranking_kl_loss",
    "relation_loss",
    "similarity_kl_loss",
]
