"""The distillation step: one teacher view and one student forward serve every loss.

:class:`DistillModule` holds the student and the learned projections (the only
trained parameters); the teacher is kept outside the module's parameters so it is
never wrapped by DDP nor optimised. ``forward(batch)`` returns the weighted total
loss and every term separately, for logging. Over mapped layer pairs, hidden-state and
attention MSE are summed (TinyBERT), PKD averages (its loss stacks the pairs), cosine
averages. QA models distil start and end distributions alike (mean of the two).
"""

from __future__ import annotations

import torch

from alembert.distill.mapping import resolve_mapping, validate_mapping
from alembert.distill.recipe import Stage
from alembert.distill.teacher_view import (
    LABEL_KEYS,
    MODEL_INPUTS,
    aligned_view,
    online_view,
)
from alembert.errors import AlembertError
from alembert.terms import StepInputs, Term


def layer_count(model) -> int:
    return model.config.num_hidden_layers


def resolve_stage_mappings(stage: Stage, student, teacher) -> list[list[tuple[int, int]] | None]:
    """The validated (student, teacher) layer pairs of each term (None for terms without layers).

    Also checks, before any compute, what each term needs of the two models (its own
    ``check_models``: equal head counts for attention maps, no layer 0 for PKD) and equal
    widths for a projecting term with ``projection: false``."""
    ns, nt = layer_count(student), layer_count(teacher)
    ws, wt = student.config.hidden_size, teacher.config.hidden_size
    out = []
    for entry in stage.losses:
        term = entry.term
        if term.projects and ws != wt and not entry.projection:
            raise AlembertError(
                f"the {entry.loss} term of stage {stage.name!r} has projection: false but the student's hidden size is {ws} and the teacher's {wt}; "
                f"remove projection: false (learn a {ws}->{wt} linear map) or use a student of hidden size {wt}"
            )
        spec = entry.mapping_spec()
        if spec is None:
            out.append(None)
            continue
        pairs = term.check_models(student, teacher, resolve_mapping(spec, ns, nt))
        validate_mapping(pairs, ns, nt, allow_embeddings=term.allow_embeddings)
        if not pairs:
            raise AlembertError(f"the {entry.loss} term's mapping {spec!r} gives no layer pairs for a {ns}-layer student and {nt}-layer teacher; give explicit pairs")
        out.append(pairs)
    return out


def cacheable(stage: Stage) -> bool:
    """Logits and [CLS] states fit on disk; full hidden states and attention maps do not."""
    return stage.cacheable


class DistillModule(torch.nn.Module):
    def __init__(self, student, teacher, stage: Stage, cache=None, tokenizers=None, align_mode: str = "strict"):
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher  # not a submodule: never wrapped, never trained
        self.__dict__["cache"] = cache  # TeacherCache or None
        self.__dict__["tokenizers"] = tokenizers  # (teacher_tok, student_tok) when they differ
        self.align_mode = align_mode
        self.stage = stage
        self.mappings = resolve_stage_mappings(stage, student, teacher)
        self.projections = torch.nn.ModuleDict()
        hs, ht = student.config.hidden_size, teacher.config.hidden_size
        self.bound_terms: list[Term] = []  # each loss bound to its parameters, pairs and projection
        for i, (entry, pairs) in enumerate(zip(stage.losses, self.mappings, strict=True)):
            if entry.term.projects and hs != ht:  # projection: false was refused by resolve_stage_mappings
                self.projections[str(i)] = torch.nn.Linear(hs, ht)
            projection = self.projections[str(i)] if str(i) in self.projections else None
            self.bound_terms.append(entry.term(entry.params, pairs, projection))
        names = [t.loss for t in stage.losses]
        self.term_names = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]

    def teacher_layers(self) -> list[int]:
        """Teacher layers whose [CLS] state a cache must keep."""
        return sorted({layer for term in self.bound_terms for layer in term.cached_cls_layers()})

    def view(self, batch):
        hidden, attention = self.stage.needs_hidden, self.stage.needs_attention
        with torch.no_grad():
            self.teacher.eval()
            if self.cache is not None:
                return self.cache.view(batch)
            if self.tokenizers is not None:
                return aligned_view(self.teacher, batch, *self.tokenizers, hidden, attention, self.align_mode)
            return online_view(self.teacher, batch, hidden, attention)

    def forward(self, batch):
        labels = [batch[k] for k in LABEL_KEYS if k in batch]
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        teacher = self.view(batch) if self.stage.needs_teacher else None
        student = self.student(**inputs, output_hidden_states=self.stage.needs_hidden, output_attentions=self.stage.needs_attention)
        step = StepInputs(student, teacher, labels, batch["attention_mask"], batch)
        total, terms = 0.0, {}
        for entry, term, name in zip(self.stage.losses, self.bound_terms, self.term_names, strict=True):
            value = term.value(step)
            terms[name] = value.detach()
            total = total + entry.weight * value
        return total, terms
