"""The ranking term on sentence embeddings: a query's mined candidates in the teacher's order.

Its batches are not texts drawn at random but *query groups* (:mod:`alembert.embedding.queries`):
each query followed by its ``candidates`` passages, the ones the teacher ranks highest for it
among the run's texts (the query's own passage first when it is known). The student embeds every
row; the teacher's rows come from its embedding cache. The term reshapes the rows into groups and
compares the two sides' scores of each query against its candidates (listwise KL, or Margin-MSE).
Scores only: the widths may differ."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from alembert.errors import AlembertError
from alembert.losses.ranking import margin_mse_loss, ranking_kl_loss
from alembert.terms.base import Needs, StepInputs, Term


class RankParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidates: int = Field(7, ge=1, le=256, description="passages per query, mined by the teacher")
    temperature: float = Field(0.05, gt=0, description="softmax temperature of the listwise KL")
    margin: bool = Field(False, description="Margin-MSE (Hofstätter et al. 2020) instead of the listwise KL")


class EmbedRank(Term):
    """Hofstätter et al. 2020 (Margin-MSE); Ren et al. 2021, RocketQAv2 (listwise KL over candidates)."""

    name = "embed_rank"
    Params = RankParams
    needs = Needs(embeddings=True)
    cacheable = True

    @classmethod
    def group_size(cls, params: RankParams) -> int:
        return params.candidates + 1

    def value(self, step: StepInputs) -> torch.Tensor:
        size = self.params.candidates + 1
        s, t = step.student.embeddings, step.teacher.embeddings
        if s.shape[0] % size:
            raise AlembertError(
                f"embed_rank: a batch of {s.shape[0]} rows is not groups of a query and its {size - 1} candidates; "
                "train it on query groups (--queries, --pseudo-queries), with a batch size the processes divide"
            )
        s, t = s.view(-1, size, s.shape[-1]), t.view(-1, size, t.shape[-1])
        if self.params.margin:
            return margin_mse_loss(s[:, 0], s[:, 1:], t[:, 0], t[:, 1:])
        return ranking_kl_loss(s[:, 0], s[:, 1:], t[:, 0], t[:, 1:], self.params.temperature)
