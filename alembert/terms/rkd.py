"""``embed_rkd``: Park et al.'s distance-wise relational KD on sentence embeddings (any widths)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from alembert.losses.rkd import rkd_distance_loss
from alembert.terms.base import Needs, StepInputs, Term


class RKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delta: float = Field(1.0, gt=0, description="Huber threshold on the normalised distances (Park et al.: 1)")


class EmbedRKD(Term):
    """The batch's pairwise distances, normalised by their mean, student against teacher.
    One vector per text on the teacher side, so it is cached; compares no vectors across
    the two spaces, so a narrower student needs no Dense projection."""

    name = "embed_rkd"
    Params = RKDParams
    needs = Needs(embeddings=True)
    cacheable = True

    def value(self, step: StepInputs) -> torch.Tensor:
        return rkd_distance_loss(step.student.embeddings, step.teacher.embeddings, self.params.delta)
