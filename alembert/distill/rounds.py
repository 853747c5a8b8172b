"""Iterative pruning inside one run: cut a fraction, distil, cut again (``--student-prune ...,rounds=N``).

A one-shot cut removes every unit at once and leaves distillation to recover from all of the damage;
iterative pruning (Han et al. 2015; Zhu & Gupta 2017's gradual schedule; FastFormers and CoFi both
grow their sparsity during training) cuts in rounds, each choosing what to drop with the importance
of a model that has already adapted to the previous cut. Here a round is a stage of the stage runner:

* the recipe's last stage is split into ``rounds`` stages with equal shares of its steps (so the
  run trains as many steps as the one-shot run), the data continuing where the previous round
  stopped: both runs see the same batches in the same order;
* before each round after the first, the student is scored again on the training batches and cut by
  the same factor (:func:`~alembert.students.prune.round_cut`), and the distillation module is rebuilt:
  a new optimiser (the parameters changed) and learning-rate schedule (warm-up, decay: each cut is
  followed by a full-rate recovery); a learned projection to the teacher's width keeps its columns
  for the dimensions kept;
* each checkpoint remembers its student's config, so ``--resume`` rebuilds that shape before it
  loads the weights (a round's cut depends on trained weights: it cannot be replayed);
* only the last round's best model is saved: the earlier rounds are not the shape asked for.

Without ``rounds`` (or with 1) the stages are the recipe's and nothing here changes a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alembert.distill.recipe import Stage
from alembert.errors import AlembertError
from alembert.models.prune import KEY
from alembert.students.prune import recut, round_description
from alembert.training.loop import total_steps


@dataclass(frozen=True)
class RunStage:
    """One stage the run trains: ``index`` (checkpoints, ``metrics.json``), the recipe ``stage``, the
    recipe stage's number ``data_index`` (its data order: the rounds of one stage share it), the
    pruning ``round`` (1-based) of ``rounds``."""

    index: int
    stage: Stage
    data_index: int
    round: int = 1
    rounds: int = 1

    @property
    def name(self) -> str:
        return self.stage.name if self.rounds == 1 else f"{self.stage.name} (pruning round {self.round}/{self.rounds})"

    @property
    def final(self) -> bool:
        return self.round == self.rounds


def split_steps(total: int, rounds: int) -> list[int]:
    """``total`` steps in ``rounds`` shares differing by at most one, the larger ones last."""
    return [total // rounds + (r >= rounds - total % rounds) for r in range(rounds)]


class Rounds:
    """The stages of a run whose student is cut in ``spec.prune.rounds`` rounds (or the recipe's stages
    as they are). ``data`` (a :class:`~alembert.students.StudentData`) is what each round scores
    importance on, ``name`` the model the first round was cut from (for the description)."""

    def __init__(self, spec, stages: list[Stage], run, data=None, seed: int = 0, name: str = ""):
        self.prune = spec.prune if spec.prune is not None and spec.prune.rounds > 1 else None
        n = self.prune.rounds if self.prune else 1
        last = len(stages) - 1
        self.stages = [RunStage(i, s, i) for i, s in enumerate(stages[:-1])]
        self.stages += [RunStage(last + r - 1, stages[-1], last, r, n) for r in range(1, n + 1)]
        self.run, self.data, self.seed, self.name = run, data, seed, name
        self.description: str | None = None  # the student's, once a round has cut it
        self._previous = None  # the module of the round before, when a new cut was made from it

    def student(self, rs: RunStage, student, previous_module=None):
        """The model round ``rs`` trains: ``student`` itself in the first round (the builder cut it),
        else the shape its checkpoint was saved with (a resume), else ``student`` cut once more."""
        self._previous = None
        if rs.round == 1:
            return student
        saved = self.run.resumed_model_config(rs.index)
        if saved is not None:
            model = rebuild(student, saved)
            self.description = round_description(model, self.prune, rs.round, self.name)
            return model
        made = recut(student, self.prune, rs.round, self.data, self.seed + rs.round - 1, self.name)
        self.description, self._previous = made.description, previous_module
        return made.model.to(next(student.parameters()).device)

    def train(self, rs: RunStage, cfg, batches: int):
        """(the stage's training config, the micro-batches of its data order already trained on): a
        round gets its share of the stage's steps and starts where the round before stopped."""
        if rs.rounds == 1:
            return cfg, 0
        total = total_steps(batches, cfg)
        if total < rs.rounds:
            raise AlembertError(
                f"--prune-rounds {rs.rounds}: the stage {rs.stage.name!r} has only {total} steps; train longer "
                "(--epochs, --max-steps) or use fewer rounds"
            )
        shares = split_steps(total, rs.rounds)
        return cfg.model_copy(update={"max_steps": shares[rs.round - 1]}), sum(shares[: rs.round - 1]) * cfg.grad_accum

    def check(self, cfg, batches: int) -> None:
        """Refuse, before anything is written, a last stage (``cfg``, ``batches`` a epoch) too short for its rounds."""
        self.train(self.stages[-1], cfg, batches)

    def model_config(self, rs: RunStage, student) -> dict | None:
        """What a checkpoint of round ``rs`` must remember to be resumed: the student's config."""
        return student.config.to_dict() if rs.rounds > 1 else None

    def carry(self, module) -> None:
        """Projections of the round before, their columns for the dimensions the new cut kept, into
        ``module`` (the new round's); nothing after a resume (the checkpoint holds them)."""
        old = self._previous
        if old is None:
            return
        was, now = _kept(old.student.config), _kept(module.student.config)
        for key, layer in module.projections.items():
            if key not in old.projections:
                continue
            w = old.projections[key].weight
            if w.shape[1] == layer.in_features:
                cols = list(range(layer.in_features))
            elif was is not None and now is not None:
                cols = [was.index(d) for d in now]
            else:
                continue
            with torch.no_grad():
                layer.weight.copy_(w[:, cols])
                layer.bias.copy_(old.projections[key].bias)


def one_round(spec, what: str) -> None:
    """A command that prunes only once refuses ``--prune-rounds`` above 1 in one line, before anything loads."""
    if spec.prune is not None and spec.prune.rounds > 1:
        raise AlembertError(
            f"--prune-rounds {spec.prune.rounds}: {what} prunes once; prune in rounds by chaining runs (--student PREV "
            "--student-prune ...), or use distill (classification, squad) or distill-general on raw text"
        )


def prepared(rounds: Rounds, rs: RunStage, student, previous, make_parts):
    """(the student run stage ``rs`` trains, its parts): ``make_parts(rs, student)`` gives the command's
    ``(module, loader, sampler, spec, *extra)``; the round's share of steps, its data offset, the config
    its checkpoints remember and the carried projections are set here, so a command knows none of it.
    ``previous``: the module of the stage before (None at the start or after a resume)."""
    student = rounds.student(rs, student, previous)
    module, loader, sampler, spec, *extra = make_parts(rs, student)
    spec.train, spec.start_batch = rounds.train(rs, spec.train, len(loader))
    spec.model_config = rounds.model_config(rs, student)
    rounds.carry(module)
    return student, (module, loader, sampler, spec, *extra)


def plan_stages(rounds: Rounds, student, make_parts) -> list[tuple]:
    """``--dry-run``: ``(run stage, parts)`` of every stage, each round's cut made on the untrained student
    (the steps the plan times are those of the shape each round trains)."""
    planned, module = [], None
    for rs in rounds.stages:
        student, parts = prepared(rounds, rs, student, module, make_parts)
        module = parts[0]
        planned.append((rs, parts))
    return planned


def fit_stages(run, rounds: Rounds, student, make_parts, save):
    """Train every stage of ``rounds`` on the stage runner ``run``, skipping those a resume finds done;
    ``save(model)`` on each new best of the final stage. The trained student (the last round's shape)."""
    module = None
    for rs in rounds.stages:
        if run.stage_resume(rs.index) == "done":
            continue  # finished before the interruption; its result lives in the checkpoint
        previous = module and run.accelerator.unwrap_model(module)
        student, (module, loader, sampler, spec, *_) = prepared(rounds, rs, student, previous, make_parts)
        run.logger.log(stage=rs.name, losses=[t.loss for t in rs.stage.losses])

        def on_best(metrics, step, module=module):
            save(run.accelerator.unwrap_model(module).student)

        run.fit(module, loader, sampler, spec, on_best if rs is rounds.stages[-1] else None, name=rs.name)
    return student


def _kept(config) -> list[int] | None:
    return (getattr(config, KEY, None) or {}).get("hidden")


def rebuild(student, saved: dict):
    """A model of ``student``'s class with the config a checkpoint saved (its weights come from the checkpoint)."""
    config = type(student.config).from_dict(saved)
    config._attn_implementation = student.config._attn_implementation
    return type(student)(config).to(next(student.parameters()).device)
