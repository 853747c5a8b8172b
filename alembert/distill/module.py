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
from alembert.models.capture import capture_keys
from alembert.models.prune import selection
from alembert.terms import StepInputs, Term


def layer_count(model) -> int:
    return model.config.num_hidden_layers


def resolve_stage_mappings(stage: Stage, student, teacher) -> list[list[tuple[int, int]] | None]:
    """The validated (student, teacher) layer pairs of each term (None for terms without layers).

    Also checks, before any compute, what each term needs of the two models (its own
    ``check_models``: equal head counts for attention maps, no layer 0 for PKD; its own
    ``check_params``: relation heads that divide both widths) and equal widths for a
    projecting term with ``projection: false``."""
    return [pairs for _, pairs in resolve_stage_terms(stage, student, teacher)]


def resolve_stage_terms(stage: Stage, student, teacher) -> list[tuple]:
    """(params, pairs) of each term, checked as :func:`resolve_stage_mappings` says."""
    ns, nt = layer_count(student), layer_count(teacher)
    ws, wt = student.config.hidden_size, teacher.config.hidden_size
    out = []
    for entry in stage.losses:
        term = entry.term
        if term.projects and ws != wt and not entry.projection:
            raise AlembertError(
                f"the {entry.loss} term of stage {stage.name!r} has projection: false but the student's hidden size is "
                f"{ws} and the teacher's {wt}; remove projection: false (learn a {ws}->{wt} linear map) or use a "
                f"student of hidden size {wt}"
            )
        spec = entry.mapping_spec()
        if spec is None:
            out.append(term.check_params(entry.params, student, teacher, None))
            continue
        pairs = term.check_models(student, teacher, resolve_mapping(spec, ns, nt))
        validate_mapping(pairs, ns, nt, allow_embeddings=term.allow_embeddings)
        if not pairs:
            raise AlembertError(
                f"the {entry.loss} term's mapping {spec!r} gives no layer pairs for "
                f"a {ns}-layer student and {nt}-layer teacher; give explicit pairs"
            )
        out.append(term.check_params(entry.params, student, teacher, pairs))
    return out


def cacheable(stage: Stage) -> bool:
    """Logits and [CLS] states fit on disk; full hidden states and attention maps do not."""
    return stage.cacheable


def start_projection(config, hs: int, ht: int) -> torch.nn.Linear:
    """TinyBERT's learned map from the student's width to the teacher's: random, or, for a student
    whose residual dimensions were cut from this teacher's (``--student-prune heads=K``), the
    selection that puts each kept dimension back in its place (zero bias), so the hidden-state terms
    start from what the pruned student already shares with the teacher."""
    layer = torch.nn.Linear(hs, ht)
    chosen = selection(config, ht)
    if chosen is not None:
        with torch.no_grad():
            layer.weight.copy_(chosen)
            layer.bias.zero_()
    return layer


class DistillModule(torch.nn.Module):
    def __init__(self, student, teacher, stage: Stage, cache=None, tokenizers=None, align_mode: str = "strict"):
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher  # not a submodule: never wrapped, never trained
        self.__dict__["cache"] = cache  # TeacherCache or None
        self.__dict__["tokenizers"] = tokenizers  # (teacher_tok, student_tok) when they differ
        self.align_mode = align_mode
        self.stage = stage
        resolved = resolve_stage_terms(stage, student, teacher)
        self.mappings = [pairs for _, pairs in resolved]
        self.projections = torch.nn.ModuleDict()
        hs, ht = student.config.hidden_size, teacher.config.hidden_size
        self.bound_terms: list[Term] = []  # each loss bound to its parameters, pairs and projection
        for i, (entry, (params, pairs)) in enumerate(zip(stage.losses, resolved, strict=True)):
            if entry.term.projects and hs != ht:  # projection: false was refused by resolve_stage_mappings
                self.projections[str(i)] = start_projection(student.config, hs, ht)
            projection = self.projections[str(i)] if str(i) in self.projections else None
            self.bound_terms.append(entry.term(params, pairs, projection))
        captures = [term.captures() for term in self.bound_terms]  # Q/K/V projections the forwards record
        self.student_qkv = sorted(set().union(*(s for s, _ in captures)))
        self.teacher_qkv = sorted(set().union(*(t for _, t in captures)))
        names = [t.loss for t in stage.losses]
        self.term_names = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]

    def teacher_layers(self) -> list[int]:
        """Teacher layers whose [CLS] state a cache must keep."""
        return sorted({layer for term in self.bound_terms for layer in term.cached_cls_layers()})

    def view(self, batch):
        hidden, attention = self.stage.needs_hidden, self.stage.needs_attention
        with torch.no_grad():
            self.teacher.eval()
            if self.cache is not None and "idx" in batch:  # a training row; evaluation batches have no cache row
                return self.cache.view(batch)
            if self.tokenizers is not None:
                return aligned_view(
                    self.teacher, batch, *self.tokenizers, hidden, attention, self.align_mode, self.teacher_qkv
                )
            return online_view(self.teacher, batch, hidden, attention, self.teacher_qkv)

    def forward(self, batch, return_student: bool = False):
        """(total, terms); with ``return_student`` also the student's own outputs (its logits for
        an evaluation loop such as ``DistillationTrainer``'s)."""
        labels = [batch[k] for k in LABEL_KEYS if k in batch]
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        teacher = self.view(batch) if self.stage.needs_teacher else None
        with capture_keys(self.student, self.student_qkv) as student_qkv:
            student = self.student(
                **inputs, output_hidden_states=self.stage.needs_hidden, output_attentions=self.stage.needs_attention
            )
        step = StepInputs(student, teacher, labels, batch["attention_mask"], batch, student_qkv)
        total, terms = 0.0, {}
        for entry, term, name in zip(self.stage.losses, self.bound_terms, self.term_names, strict=True):
            value = term.value(step)
            terms[name] = value.detach()
            total = total + entry.weight * value
        return (total, terms, student) if return_student else (total, terms)
