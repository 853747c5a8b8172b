"""What a loss term is: a pure loss function with what it needs said out loud.

A recipe names its losses (``{loss: kd, weight: 0.5, temperature: 2}``). Each name is one
:class:`Term` subclass, and the subclass is the only place that knows about that loss:
its typed parameters (only KD has a temperature), which model outputs it needs (hidden
states, attention maps, sentence embeddings, an LM head), whether its teacher side is
small enough to cache on disk, whether it learns a projection when the widths differ,
its default layer mapping and whether layer 0 (the embeddings) may take part.

The distillation module reads those declarations instead of keeping name lists: which
outputs to request from each model, which stages can use a teacher cache, when DDP must
expect unused parameters. Adding a loss is one pure function in :mod:`alembert.losses`
and one subclass here; defining the subclass registers it (see :data:`TERMS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from alembert.errors import AlembertError

Pair = tuple[int, int]

#: name -> Term subclass, filled by ``Term.__init_subclass__``.
TERMS: dict[str, type[Term]] = {}


class NoParams(BaseModel):
    """A term without parameters of its own (weight, mapping and projection are every term's)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Needs:
    """The model outputs a term reads. The module requests the union over a stage's terms."""

    teacher: bool = True
    logits: bool = False  # the prediction head's outputs (on raw text: an LM head's vocabulary logits)
    hidden: bool = False  # hidden_states of both models
    attention: bool = False  # attention maps (eager attention)
    embeddings: bool = False  # pooled sentence embeddings
    qkv: bool = False  # attention queries, keys, values of the layers in Term.captures (forward hooks, any kernel)


@dataclass
class StepInputs:
    """Everything a term may read in one step: the student's output, what the teacher
    view offers, the labels (one tensor per prediction head) and the token mask."""

    student: Any
    teacher: Any  # TeacherView or None
    labels: list[torch.Tensor]
    mask: torch.Tensor
    batch: dict = field(default_factory=dict)
    student_qkv: dict = field(default_factory=dict)  # (layer, kind) -> (B, S, W), recorded on the student's forward


class Term:
    """One loss of a recipe, bound to its parameters, layer pairs and projection.

    Subclasses set the class attributes below and implement :meth:`value`."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams
    needs: ClassVar[Needs] = Needs()
    cacheable: ClassVar[bool] = False  # its teacher side fits in the teacher cache
    projects: ClassVar[bool] = False  # learns a student->teacher linear map when widths differ
    default_mapping: ClassVar[str | None] = None  # None: not a layer loss
    allow_embeddings: ClassVar[bool] = True  # layer 0 may appear in its pairs
    reduce_pairs: ClassVar[str] = "mean"  # how values over layer pairs combine: "mean" or "sum"
    compares_vectors: ClassVar[bool] = False  # compares student and teacher embeddings directly: same width needed
    raw_text: ClassVar[bool] = True  # usable in general distillation (False: needs gold labels or a task head)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in TERMS:
                raise TypeError(
                    f"loss term {cls.name!r} defined twice ({TERMS[cls.name].__qualname__}, {cls.__qualname__})"
                )
            TERMS[cls.name] = cls

    def __init__(self, params: BaseModel, pairs: list[Pair] | None, projection: torch.nn.Module | None):
        self.params, self.pairs, self.projection = params, pairs, projection

    # --- validation before any compute -------------------------------------------------
    @classmethod
    def check_models(cls, student, teacher, pairs: list[Pair] | None) -> list[Pair] | None:
        """Refuse (one line) a pairing this loss cannot compute; may filter the pairs."""
        return pairs

    @classmethod
    def check_params(
        cls, params: BaseModel, student, teacher, pairs: list[Pair] | None
    ) -> tuple[BaseModel, list[Pair] | None]:
        """Refuse (one line) parameters that do not fit these two models, before any compute.
        Returns (params, pairs) with what the parameters leave to the models filled in; a term
        whose layers are parameters rather than a mapping gives its pairs here."""
        return params, pairs

    # --- what the forwards must record ---------------------------------------------------
    def captures(self) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
        """(student, teacher) ``(layer, kind)`` projections to record during the forwards
        (:func:`alembert.models.capture.capture_keys`; kind ``q``, ``k`` or ``v``, layers 1-based)."""
        return set(), set()

    # --- what the teacher cache must keep -----------------------------------------------
    def cached_cls_layers(self) -> list[int]:
        """Teacher layers whose [CLS] state this term reads from a cache."""
        return []

    # --- the loss ------------------------------------------------------------------------
    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x) if self.projection is not None else x

    def value(self, step: StepInputs) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def group_size(cls, params: BaseModel) -> int | None:
        """Rows per training group when the term reads batches of groups (a query and its mined
        candidates: :mod:`alembert.terms.ranking`), None when it reads texts drawn at random."""
        return None

    def over_pairs(self, values: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(values)
        return stacked.sum() if self.reduce_pairs == "sum" else stacked.mean()

    @classmethod
    def describe(cls, params: BaseModel) -> str:
        """Its parameters for a model card, e.g. ``T=2``."""
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.model_dump().items())


def get_term(name: str) -> type[Term]:
    """The term registered under ``name``; an unknown name is one line listing the known ones."""
    from alembert import terms as _all  # noqa: F401  (importing the package registers every term)

    try:
        return TERMS[name]
    except (KeyError, TypeError):
        raise AlembertError(f"unknown loss {name!r}; known losses: {', '.join(sorted(TERMS))}") from None
