"""Terms on intermediate layers: hidden states (TinyBERT, DistilBERT's cosine), attention
maps (TinyBERT) and normalised [CLS] states (Patient KD). Pairs are (student, teacher)
layer indices, 0 the embedding output (see :mod:`alembert.distill.mapping`)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from alembert.errors import AlembertError
from alembert.losses.attention import attention_loss
from alembert.losses.cosine import cosine_loss
from alembert.losses.hidden import hidden_mse_loss
from alembert.losses.pkd import pkd_loss
from alembert.models.prune import kept_heads
from alembert.terms.base import Needs, StepInputs, Term


def _token_mask(step: StepInputs) -> torch.Tensor:
    """Positions token-level losses may use: the aligned ones across tokenizers, else every real token."""
    t = step.teacher
    return t.mask if t is not None and t.mask is not None else step.mask


class HiddenMSE(Term):
    """TinyBERT's hidden-state (and embedding-layer) MSE, summed over pairs, through W_h when widths differ."""

    name = "hidden_mse"
    needs = Needs(hidden=True)
    projects = True
    default_mapping = "uniform"
    reduce_pairs = "sum"

    def value(self, step: StepInputs) -> torch.Tensor:
        s, t, mask = step.student, step.teacher, _token_mask(step)
        return self.over_pairs(
            [hidden_mse_loss(s.hidden_states[a], t.hidden(b), mask, self.projection) for a, b in self.pairs]
        )


class Cosine(Term):
    """DistilBERT's cosine between hidden states (the last layer by default), averaged over pairs."""

    name = "cosine"
    needs = Needs(hidden=True)
    projects = True
    default_mapping = "last-layer"

    def value(self, step: StepInputs) -> torch.Tensor:
        s, t, mask = step.student, step.teacher, _token_mask(step)
        return self.over_pairs(
            [cosine_loss(self.project(s.hidden_states[a]), t.hidden(b), mask) for a, b in self.pairs]
        )


class AttentionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teacher_heads: list[list[int]] | None = Field(
        None,
        description="per student layer, the teacher heads its maps are compared with; filled in for a student "
        "whose heads were pruned from this teacher (the heads it kept), else every head in order",
    )


class Attention(Term):
    """TinyBERT's attention-map MSE, summed over pairs; maps exist for layers 1..L only and the
    maps are compared head by head: equal head counts, or a student pruned from the teacher
    (``--student-prune heads=K``), whose heads are compared with the teacher heads they were cut from."""

    name = "attention"
    Params = AttentionParams
    needs = Needs(attention=True)
    default_mapping = "uniform"
    allow_embeddings = False
    reduce_pairs = "sum"

    @classmethod
    def check_models(cls, student, teacher, pairs):
        hs, ht = student.config.num_attention_heads, teacher.config.num_attention_heads
        if hs != ht and kept_heads(student.config, ht) is None:
            raise AlembertError(
                f"attention loss needs equal head counts, student has {hs} and teacher {ht}; "
                f"use a student with {ht} heads, one pruned from this teacher, or drop the attention term"
            )
        return [p for p in pairs if p[0] > 0 and p[1] > 0]  # uniform maps 0<-0 too: no attention there

    @classmethod
    def check_params(cls, params, student, teacher, pairs):
        ht = teacher.config.num_attention_heads
        if params.teacher_heads is None and student.config.num_attention_heads != ht:
            params = params.model_copy(update={"teacher_heads": kept_heads(student.config, ht)})
        return params, pairs

    @classmethod
    def describe(cls, params) -> str:
        return "teacher heads: those the pruned student kept" if params.teacher_heads else ""

    def value(self, step: StepInputs) -> torch.Tensor:
        s, t, mask = step.student, step.teacher, _token_mask(step)
        heads = self.params.teacher_heads
        return self.over_pairs(
            [
                attention_loss(s.attentions[a - 1], t.attention(b)[:, heads[a - 1]] if heads else t.attention(b), mask)
                for a, b in self.pairs
            ]
        )


class PKD(Term):
    """Patient KD: MSE of L2-normalised [CLS] states of intermediate layers (skip or last), task stage only."""

    name = "pkd"
    needs = Needs(hidden=True)
    cacheable = True
    projects = True
    default_mapping = "skip"
    allow_embeddings = False
    raw_text = False

    @classmethod
    def check_models(cls, student, teacher, pairs):
        if any(s == 0 or t == 0 for s, t in pairs):
            raise AlembertError(
                "pkd mapping uses [CLS] states of transformer layers; layer 0 (embeddings) is not allowed"
            )
        return pairs

    def cached_cls_layers(self) -> list[int]:
        return sorted({t for _, t in self.pairs})

    def value(self, step: StepInputs) -> torch.Tensor:
        s, t = step.student, step.teacher
        return pkd_loss(
            [self.project(s.hidden_states[a][:, 0]) for a, _ in self.pairs], [t.cls(b) for _, b in self.pairs]
        )
