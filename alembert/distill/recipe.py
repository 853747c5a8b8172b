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
from typing import Literal

from pydantic import Field, model_validator

from alembert.config.load import build_config
from alembert.config.schema import Strict
from alembert.errors import AlembertError

RECIPE_DIR = Path(__file__).parent / "recipes"
LAYER_LOSSES = {"cosine", "hidden_mse", "attention", "pkd"}
DEFAULT_MAPPING = {"cosine": "last-layer", "hidden_mse": "uniform", "attention": "uniform", "pkd": "skip"}


class LossTerm(Strict):
    loss: Literal["kd", "ce", "mlm", "cosine", "hidden_mse", "attention", "pkd"]
    weight: float = Field(1.0, ge=0)
    temperature: float = Field(1.0, gt=0, description="kd only")
    mapping: str | list[tuple[int, int]] | None = Field(None, description="layer losses: strategy or (student, teacher) pairs")
    projection: bool = Field(True, description="hidden_mse/pkd/cosine: learn a linear map when widths differ; false makes a width mismatch an error")

    @property
    def needs_teacher(self) -> bool:
        return self.loss not in ("ce", "mlm")

    def mapping_spec(self):
        return self.mapping if self.mapping is not None else DEFAULT_MAPPING.get(self.loss)


class Stage(Strict):
    name: str = "distill"
    losses: list[LossTerm] = Field(min_length=1)
    epochs: float | None = Field(None, gt=0, description="overrides train.epochs for this stage")
    lr: float | None = Field(None, gt=0, description="overrides train.lr for this stage")

    @model_validator(mode="after")
    def _some_weight(self):
        """All weights zero: the loss is 0 whatever the student does; it would train to nothing."""
        if all(t.weight == 0 for t in self.losses):
            raise ValueError(f"stage {self.name!r}: every loss weight is 0, so the student would learn nothing; "
                             "give at least one loss a positive weight")
        return self

    @property
    def needs_teacher(self) -> bool:
        return any(t.needs_teacher for t in self.losses)

    @property
    def needs_hidden(self) -> bool:
        return any(t.loss in ("cosine", "hidden_mse", "pkd") for t in self.losses)

    @property
    def needs_attention(self) -> bool:
        return any(t.loss == "attention" for t in self.losses)


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
        """Vocabulary-level losses (masked-LM, or KD over the vocabulary in general distillation)."""
        return any(t.loss in ("mlm", "kd") for s in self.stages for t in s.losses)


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path | dict) -> Recipe:
    """A packaged recipe by name, a YAML file, or an inline recipe (a dict)."""
    if isinstance(name_or_path, dict):
        return build_config(Recipe, None, {k: v for k, v in name_or_path.items()})
    path = Path(name_or_path)
    if not path.suffix and (RECIPE_DIR / f"{name_or_path}.yaml").is_file():
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    elif not path.is_file():
        raise AlembertError(f"unknown recipe {str(name_or_path)!r}; use one of {', '.join(recipe_names())} or a YAML file path")
    return build_config(Recipe, path)
