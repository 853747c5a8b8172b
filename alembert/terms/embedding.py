"""Terms on pooled sentence embeddings (an embedding teacher: sentence-transformers models).

Their teacher side is one vector per text, so it is cached once per text set; they read
no prediction head. ``embed_mse`` and ``embed_cosine`` compare vectors, so the student's
embeddings must live in the teacher's space (its Dense projection does that when widths
differ); ``embed_sim`` compares in-batch similarity distributions and needs no projection."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from alembert.losses.embedding import embedding_cosine_loss, embedding_mse_loss, similarity_kl_loss
from alembert.terms.base import Needs, StepInputs, Term


class _VectorTerm(Term):
    """A loss between each text's student and teacher embedding (``loss(student, teacher)``)."""

    needs = Needs(embeddings=True)
    cacheable = True
    compares_vectors = True
    loss = staticmethod(embedding_mse_loss)

    def value(self, step: StepInputs) -> torch.Tensor:
        return self.loss(step.student.embeddings, step.teacher.embeddings)


class EmbedMSE(_VectorTerm):
    """Reimers & Gurevych 2020: MSE between student and teacher sentence embeddings."""

    name = "embed_mse"


class EmbedCosine(_VectorTerm):
    """1 - cosine between student and teacher sentence embeddings: directions only."""

    name = "embed_cosine"
    loss = staticmethod(embedding_cosine_loss)


class SimParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.05, gt=0, description="softmax temperature over in-batch cosine similarities")


class EmbedSim(Term):
    """KL between the teacher's and the student's in-batch similarity distributions (any widths)."""

    name = "embed_sim"
    Params = SimParams
    needs = Needs(embeddings=True)
    cacheable = True

    def value(self, step: StepInputs) -> torch.Tensor:
        return similarity_kl_loss(step.student.embeddings, step.teacher.embeddings, self.params.temperature)
