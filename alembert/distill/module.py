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
    cached_view,
    online_view,
    output_logits,
)
from alembert.errors import AlembertError
from alembert.losses import (
    attention_loss,
    cosine_loss,
    hard_label_loss,
    hidden_mse_loss,
    kd_loss,
    mlm_loss,
    pkd_loss,
)

PROJECTED = ("hidden_mse", "pkd", "cosine")  # hidden-state terms that learn a projection when widths differ


def layer_count(model) -> int:
    return model.config.num_hidden_layers


def resolve_stage_mappings(stage: Stage, student, teacher) -> list[list[tuple[int, int]] | None]:
    """The validated (student, teacher) layer pairs of each term (None for logit losses).

    Also checks what else a term needs of the two models before any compute: equal head
    counts for attention losses, equal widths for a hidden-state term with ``projection: false``."""
    ns, nt = layer_count(student), layer_count(teacher)
    ws, wt = student.config.hidden_size, teacher.config.hidden_size
    out = []
    for term in stage.losses:
        if term.loss in PROJECTED and ws != wt and not term.projection:
            raise AlembertError(
                f"the {term.loss} term of stage {stage.name!r} has projection: false but the student's hidden size is {ws} and the teacher's {wt}; "
                f"remove projection: false (learn a {ws}->{wt} linear map) or use a student of hidden size {wt}"
            )
        spec = term.mapping_spec()
        if spec is None:
            out.append(None)
            continue
        pairs = resolve_mapping(spec, ns, nt)
        if term.loss == "attention":  # attention maps exist for layers 1..L only
            pairs = [p for p in pairs if p[0] > 0 and p[1] > 0]
            validate_mapping(pairs, ns, nt, allow_embeddings=False)
            hs, ht = student.config.num_attention_heads, teacher.config.num_attention_heads
            if hs != ht:
                raise AlembertError(f"attention loss needs equal head counts, student has {hs} and teacher {ht}; use a student with {ht} heads or drop the attention term")
        if term.loss == "pkd" and any(s == 0 or t == 0 for s, t in pairs):
            raise AlembertError("pkd mapping uses [CLS] states of transformer layers; layer 0 (embeddings) is not allowed")
        if not pairs:
            raise AlembertError(f"the {term.loss} term's mapping {spec!r} gives no layer pairs for a {ns}-layer student and {nt}-layer teacher; give explicit pairs")
        out.append(pairs)
    return out


def cacheable(stage: Stage) -> bool:
    """Logits and [CLS] states fit on disk; full hidden states and attention maps do not."""
    return stage.needs_teacher and not stage.needs_attention and all(t.loss in ("kd", "ce", "pkd") for t in stage.losses)


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
        for i, term in enumerate(stage.losses):
            if term.loss in PROJECTED and hs != ht:  # projection: false was refused by resolve_stage_mappings
                self.projections[str(i)] = torch.nn.Linear(hs, ht)
        names = [t.loss for t in stage.losses]
        self.term_names = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]

    def teacher_layers(self) -> list[int]:
        """Teacher layers whose [CLS] state a cache must keep (PKD terms)."""
        return sorted({t for term, pairs in zip(self.stage.losses, self.mappings, strict=True) if term.loss == "pkd" for _, t in pairs})

    def view(self, batch):
        hidden, attention = self.stage.needs_hidden, self.stage.needs_attention
        with torch.no_grad():
            self.teacher.eval()
            if self.cache is not None:
                return cached_view(self.cache, batch)
            if self.tokenizers is not None:
                return aligned_view(self.teacher, batch, *self.tokenizers, hidden, attention, self.align_mode)
            return online_view(self.teacher, batch, hidden, attention)

    def forward(self, batch):
        labels = [batch[k] for k in LABEL_KEYS if k in batch]
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        teacher = self.view(batch) if self.stage.needs_teacher else None
        student = self.student(**inputs, output_hidden_states=self.stage.needs_hidden, output_attentions=self.stage.needs_attention)
        total, terms = 0.0, {}
        for i, (term, name) in enumerate(zip(self.stage.losses, self.term_names, strict=True)):
            value = self.term_value(i, term, student, teacher, labels, batch["attention_mask"])
            terms[name] = value.detach()
            total = total + term.weight * value
        return total, terms

    def term_value(self, i, term, s, t, labels, mask):
        pairs = self.mappings[i]
        proj = self.projections[str(i)] if str(i) in self.projections else None
        project = proj or (lambda x: x)
        if term.loss == "ce":
            return torch.stack([hard_label_loss(o, y) for o, y in zip(output_logits(s), labels, strict=True)]).mean()
        if term.loss == "mlm":
            return mlm_loss(s.logits, labels[0])
        if term.loss == "kd":
            if getattr(s, "logits", None) is not None and s.logits.dim() == 3:  # vocabulary KD of general distillation: masked positions only (DistilBERT)
                return kd_loss(s.logits, t.logits[0], term.temperature, mask=labels[0] != -100)
            return torch.stack([kd_loss(o, to, term.temperature) for o, to in zip(output_logits(s), t.logits, strict=True)]).mean()
        if term.loss == "pkd":
            return pkd_loss([project(s.hidden_states[a][:, 0]) for a, _ in pairs], [t.cls(b) for _, b in pairs])
        mask = t.mask if t.mask is not None else mask
        if term.loss == "attention":
            return torch.stack([attention_loss(s.attentions[a - 1], t.attention(b), mask) for a, b in pairs]).sum()
        if term.loss == "cosine":
            return torch.stack([cosine_loss(project(s.hidden_states[a]), t.hidden(b), mask) for a, b in pairs]).mean()
        return torch.stack([hidden_mse_loss(s.hidden_states[a], t.hidden(b), mask, proj) for a, b in pairs]).sum()
