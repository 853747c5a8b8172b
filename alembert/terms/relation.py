"""MiniLM's and MiniLMv2's self-attention terms: attention distributions (KL), value relation,
Q-Q / K-K / V-V relations (Wang et al. 2020, 2021).

The relations compare ``softmax(x_h x_hᵀ / √d_h)`` maps, (seq × seq) whatever the width, so
the student may be narrower than the teacher and learns no projection. They read the
attention's query/key/value projections, recorded by forward hooks
(:func:`alembert.models.capture.capture_keys`) on the layers each term lists in
:meth:`~alembert.terms.base.Term.captures`; the attention kernel does not matter. Attention
transfer reads the attention maps, so both models run eager attention.

None is cacheable (token-level, seq × seq). Across two tokenizers (``--cross-tokenizer
strict``) the teacher's recorded rows are gathered onto the student's aligned positions, as
its hidden states are, and the aligned mask masks queries and keys.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from alembert.errors import AlembertError
from alembert.losses.attention_kl import attention_kl_loss
from alembert.losses.relation import relation_loss
from alembert.models.capture import QKV
from alembert.terms.base import Needs, StepInputs, Term


def _token_mask(step: StepInputs) -> torch.Tensor:
    """The aligned positions across tokenizers, else every real token."""
    t = step.teacher
    return t.mask if t is not None and t.mask is not None else step.mask


def _heads(model) -> int:
    return model.config.num_attention_heads


def _width(model) -> int:
    return model.config.hidden_size  # the width of each query/key/value projection (heads concatenated)


def _check_divides(loss: str, heads: int, student, teacher) -> None:
    for side, model in (("student", student), ("teacher", teacher)):
        if _width(model) % heads:
            raise AlembertError(
                f"the {loss} term's {heads} relation heads do not divide the {side}'s hidden size {_width(model)} "
                f"(student {_width(student)}, teacher {_width(teacher)}); "
                "set relation_heads to a common divisor of both"
            )


class AttentionKL(Term):
    """MiniLM's attention transfer: KL(teacher ‖ student) of the attention distributions, head by
    head, of the last layer by default (averaged over pairs); equal head counts."""

    name = "attention_kl"
    needs = Needs(attention=True)
    default_mapping = "last-layer"
    allow_embeddings = False

    @classmethod
    def check_models(cls, student, teacher, pairs):
        hs, ht = _heads(student), _heads(teacher)
        if hs != ht:
            raise AlembertError(
                f"attention_kl compares attention maps head by head, but the student has {hs} heads and the "
                f"teacher {ht}; use a student with {ht} heads, or minilmv2 (qkv_relation, any head count)"
            )
        return [p for p in pairs if p[0] > 0 and p[1] > 0]

    def value(self, step: StepInputs) -> torch.Tensor:
        s, t, mask = step.student, step.teacher, _token_mask(step)
        return self.over_pairs([attention_kl_loss(s.attentions[a - 1], t.attention(b), mask) for a, b in self.pairs])


class ValueRelationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    relation_heads: int | None = Field(
        None,
        gt=0,
        strict=True,
        description="relation heads; default the attention heads (then the head counts must match)",
    )


class ValueRelation(Term):
    """MiniLM's value relation: KL of softmax(V Vᵀ/√d) per head, the last layer by default
    (averaged over pairs). The heads are the attention heads unless ``relation_heads`` is set."""

    name = "value_relation"
    Params = ValueRelationParams
    needs = Needs(qkv=True)
    default_mapping = "last-layer"
    allow_embeddings = False

    @classmethod
    def check_params(cls, params, student, teacher, pairs):
        heads = params.relation_heads
        if heads is None:
            hs, ht = _heads(student), _heads(teacher)
            if hs != ht:
                raise AlembertError(
                    f"value_relation uses the attention heads as relation heads, but the student has {hs} and the "
                    f"teacher {ht}; set relation_heads (a divisor of both hidden sizes), use a student with {ht} "
                    "heads, or minilmv2 (qkv_relation)"
                )
            heads = hs
        _check_divides(cls.name, heads, student, teacher)
        return params.model_copy(update={"relation_heads": heads}), pairs

    def captures(self):
        return {(a, "v") for a, _ in self.pairs}, {(b, "v") for _, b in self.pairs}

    def value(self, step: StepInputs) -> torch.Tensor:
        t, mask, heads = step.teacher, _token_mask(step), self.params.relation_heads
        return self.over_pairs(
            [relation_loss(step.student_qkv[(a, "v")], t.qkv(b, "v"), mask, heads) for a, b in self.pairs]
        )

    @classmethod
    def describe(cls, params) -> str:
        return f"{params.relation_heads or 'attention'} relation heads"


class QKVRelationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    relation_heads: int = Field(
        12,
        gt=0,
        strict=True,
        description="relation heads each side's Q, K, V are split into (must divide both hidden sizes)",
    )
    teacher_layer: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="the teacher layer (1-based) distilled into the student's last; default its last",
    )


class QKVRelation(Term):
    """MiniLMv2: KL of the Q-Q, K-K and V-V relations (summed) of one teacher layer and the
    student's last layer, in ``relation_heads`` relation heads: any head counts, any widths
    that the relation heads divide."""

    name = "qkv_relation"
    Params = QKVRelationParams
    needs = Needs(qkv=True)

    @classmethod
    def check_params(cls, params, student, teacher, pairs):
        ns, nt = student.config.num_hidden_layers, teacher.config.num_hidden_layers
        layer = params.teacher_layer if params.teacher_layer is not None else nt
        if not 1 <= layer <= nt:
            raise AlembertError(
                f"qkv_relation: teacher_layer {layer} is out of range 1..{nt} (the teacher has {nt} layers; 1-based)"
            )
        _check_divides(cls.name, params.relation_heads, student, teacher)
        return params.model_copy(update={"teacher_layer": layer}), [(ns, layer)]

    def captures(self):
        return {(a, k) for a, _ in self.pairs for k in QKV}, {(b, k) for _, b in self.pairs for k in QKV}

    def value(self, step: StepInputs) -> torch.Tensor:
        t, mask, heads = step.teacher, _token_mask(step), self.params.relation_heads
        ((a, b),) = self.pairs
        return torch.stack([relation_loss(step.student_qkv[(a, k)], t.qkv(b, k), mask, heads) for k in QKV]).sum()

    @classmethod
    def describe(cls, params) -> str:
        layer = params.teacher_layer if params.teacher_layer is not None else "last"
        return f"{params.relation_heads} relation heads, teacher layer {layer}"
