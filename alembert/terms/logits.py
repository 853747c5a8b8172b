"""Terms on the prediction head's outputs: soft targets (KD), gold labels (CE), masked LM."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from alembert.losses.ce import IGNORE_INDEX, hard_label_loss, mlm_loss
from alembert.losses.kd import kd_loss
from alembert.models.heads import output_logits
from alembert.terms.base import Needs, StepInputs, Term


class KDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(1.0, gt=0, description="softmax temperature; the loss is scaled by T²")


class KD(Term):
    """Hinton's soft targets; on a masked-LM model (general distillation) over the vocabulary at
    the masked positions only, as DistilBERT. A QA model distils start and end alike (mean)."""

    name = "kd"
    Params = KDParams
    needs = Needs(logits=True)
    cacheable = True

    def value(self, step: StepInputs) -> torch.Tensor:
        s, t, temperature = step.student, step.teacher, self.params.temperature
        if getattr(s, "logits", None) is not None and s.logits.dim() == 3:  # vocabulary KD (DistilBERT)
            return kd_loss(s.logits, t.logits[0], temperature, mask=step.labels[0] != IGNORE_INDEX)
        pairs = zip(output_logits(s), t.logits, strict=True)
        return torch.stack([kd_loss(o, to, temperature) for o, to in pairs]).mean()

    @classmethod
    def describe(cls, params) -> str:
        return f"T={params.temperature:g}"


class CE(Term):
    """The gold labels (cross-entropy, or MSE for regression): the student's own task loss."""

    name = "ce"
    needs = Needs(teacher=False, logits=True)
    cacheable = True
    raw_text = False

    def value(self, step: StepInputs) -> torch.Tensor:
        heads = zip(output_logits(step.student), step.labels, strict=True)
        return torch.stack([hard_label_loss(o, y) for o, y in heads]).mean()


class MLM(Term):
    """The student's own masked-LM loss on dynamically masked raw text (DistilBERT)."""

    name = "mlm"
    needs = Needs(teacher=False, logits=True)
    cacheable = True

    def value(self, step: StepInputs) -> torch.Tensor:
        return mlm_loss(step.student.logits, step.labels[0])
