"""Recipes: named compositions of losses with weights, as data.

A recipe is a list of stages; each stage trains with a weighted sum of loss
terms. Packaged recipes live in ``alembert/distill/recipes/*.yaml``; a user
recipe is any YAML file of the same shape::

    name: my-recipe
    stages:
      - name: distill
        losses:
          - {loss: kd, weight: 0.5, temperature: 4}
          - {loss: ce, weight: 0.5}
          - {loss: pkd, weight: 100, mapping: skip}
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alembert.config.load import build_config
from alembert.config.schema import Strict
from alembert.distill.recipe_files import RECIPE_DIR, recipe_names
from alembert.errors import AlembertError
from alembert.terms import Term, get_term


class LossTerm(Strict):
    """One weighted loss of a stage. ``loss`` names a registered term (:mod:`alembert.terms`);
    any other key is one of that term's own parameters (``temperature`` for kd), validated
    by the term's ``Params`` model."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    loss: str
    weight: float = Field(1.0, ge=0)
    mapping: str | list[tuple[int, int]] | None = Field(
        None, description="layer losses: strategy or (student, teacher) pairs"
    )
    projection: bool = Field(
        True, description="terms that learn a projection when widths differ; false makes a width mismatch an error"
    )

    @model_validator(mode="after")
    def _known_term(self):
        term = get_term(self.loss)  # unknown name: one line listing the known ones
        try:
            term.Params.model_validate(self.model_extra or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            known = ", ".join(term.Params.model_fields) or "none"
            raise ValueError(f"loss {self.loss!r}, parameter {key!r}: {err['msg']} (its parameters: {known})") from None
        if self.mapping is not None and term.default_mapping is None:
            raise ValueError(f"loss {self.loss!r} is not a layer loss and takes no mapping")
        return self

    @property
    def term(self) -> type[Term]:
        return get_term(self.loss)

    @property
    def params(self) -> BaseModel:
        return self.term.Params.model_validate(self.model_extra or {})

    @property
    def needs_teacher(self) -> bool:
        return self.term.needs.teacher

    def mapping_spec(self):
        return self.mapping if self.mapping is not None else self.term.default_mapping


class Stage(Strict):
    name: str = "distill"
    losses: list[LossTerm] = Field(min_length=1)
    epochs: float | None = Field(None, gt=0, description="overrides train.epochs for this stage")
    lr: float | None = Field(None, gt=0, description="overrides train.lr for this stage")

    @model_validator(mode="after")
    def _some_weight(self):
        """All weights zero: the loss is 0 whatever the student does; it would train to nothing."""
        if all(t.weight == 0 for t in self.losses):
            raise ValueError(
                f"stage {self.name!r}: every loss weight is 0, so the student would learn nothing; "
                "give at least one loss a positive weight"
            )
        return self

    def needs(self, what: str) -> bool:
        """Whether any term of the stage needs ``what`` (a field of :class:`~alembert.terms.Needs`)."""
        return any(getattr(t.term.needs, what) for t in self.losses)

    @property
    def needs_teacher(self) -> bool:
        return self.needs("teacher")

    @property
    def needs_hidden(self) -> bool:
        return self.needs("hidden")

    @property
    def needs_attention(self) -> bool:
        return self.needs("attention")

    @property
    def cacheable(self) -> bool:
        """The teacher side of every term fits in the teacher cache (logits, [CLS] states)."""
        return self.needs_teacher and all(t.term.cacheable for t in self.losses)

    def train_config(self, train):
        """``train`` (a ``TrainConfig``) with this stage's ``epochs`` and ``lr`` where set."""
        return train.model_copy(
            update={k: v for k, v in {"epochs": self.epochs, "lr": self.lr}.items() if v is not None}
        )

    @property
    def group_size(self) -> int | None:
        """Rows per query group when a term of the stage trains on query groups (None: plain batches)."""
        sizes = {s for t in self.losses if (s := t.term.group_size(t.params)) is not None}
        if len(sizes) > 1:
            raise AlembertError(
                f"stage {self.name!r}: its ranking terms ask for {sorted(sizes)} rows per query group; "
                "give them the same number of candidates"
            )
        return sizes.pop() if sizes else None

    @property
    def leaves_head_unused(self) -> bool:
        """No term reads the prediction head: under DDP its parameters get no gradient."""
        return not self.needs("logits")


class Recipe(Strict):
    name: str
    description: str = ""
    source: str = ""
    stages: list[Stage] = Field(min_length=1)

    @property
    def needs_attention(self) -> bool:
        return any(s.needs_attention for s in self.stages)

    @property
    def needs_lm_head(self) -> bool:
        """On raw text the only prediction head is an LM head: any term on logits needs one."""
        return any(s.needs("logits") for s in self.stages)

    @property
    def find_unused_parameters(self) -> bool:
        """The one DDP rule: some stage leaves trained parameters without gradients."""
        return any(s.leaves_head_unused for s in self.stages)


def load_recipe(name_or_path: str | Path | dict) -> Recipe:
    """A packaged recipe by name, a YAML file, or an inline recipe (a dict)."""
    if isinstance(name_or_path, dict):
        return build_config(Recipe, None, {k: v for k, v in name_or_path.items()})
    path = Path(name_or_path)
    if not path.suffix and (RECIPE_DIR / f"{name_or_path}.yaml").is_file():
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    elif not path.is_file():
        raise AlembertError(
            f"unknown recipe {str(name_or_path)!r}; use one of {', '.join(recipe_names())} or a YAML file path"
        )
    return build_config(Recipe, path)
