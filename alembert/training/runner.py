"""The one stage runner behind every training command.

``finetune``, ``distill``, ``distill-general`` (plain and sentence-embedding) and both
``--task squad`` commands share one skeleton; each command keeps only what is its own
(which models, which data, which module, which evaluation). The order is the promise:

1. :class:`Run` checks the output folder (nothing is created), finds the checkpoint to
   resume and checks ``--push-to-hub`` (offline: a one-line error before any compute);
2. the command validates and loads everything: models, mappings, data. Every on-disk cache
   (tokenised data, teacher outputs, corpus packing, embeddings) is built inside
   :meth:`Run.cache_guard`: one process writes it while the others wait, then read it;
3. ``--dry-run`` stops here: :meth:`Run.plan` times a few real steps and prints the cost,
   writing nothing;
4. :meth:`Run.open` creates the output folder (so a refused run leaves none), the logger,
   and the resolved ``*_config.yaml``;
5. :meth:`Run.fit` trains one stage after the other (a stage finished before an
   interruption is skipped on ``--resume``, the interrupted one continues from its checkpoint);
6. :meth:`Run.finish` writes ``metrics.json`` (the schema below), the model card, moves an
   ``--overwrite`` run's files into place, and pushes to the Hub when asked.

DDP's ``find_unused_parameters`` follows one rule, :func:`find_unused_parameters`.

``metrics.json`` (the dict every ``run_*`` function returns), the same keys for every command:

=====================  ==============================================================
``command``            finetune, distill or distill-general
``kind``               classification, extractive-qa, corpus (raw-text distillation), embedding
``task``               the task name (``corpus`` for raw text, ``embedding`` for embedding runs)
``model``              what was trained: the fine-tuned model, or the student's description
``teacher``            the teacher (``None`` for finetune)
``recipe``             the recipe's name (``None`` for finetune)
``main_metric``        the dev metric that chose the saved model (``heldout_loss`` is minimised)
``dev``                the saved model's dev metrics ``{metric: value}``; embedding runs evaluate
                       several zero-shot tasks at the end: ``{task: {metric: value}}``
``teacher_dev``        the teacher's, same shape (``{}`` when there is none)
``retention``          100 x student / teacher main metric (per task for embedding runs), or ``None``
``best_step``          the step of the saved model (in the last stage)
``last_dev``           the dev metrics at the last evaluation
``steps``              optimiser steps, all stages together
``stages``             per stage: ``{stage, steps, seconds, best_dev, best_step}``
``train_examples``     training examples (packed sequences, QA questions, texts)
``dev_examples``       dev examples (held-out sequences for raw text)
``train_seconds``      wall seconds from the first stage's start to the last stage's end
``samples_per_second`` training examples per second, evaluation time excluded
``parameters``         the trained model's parameters
``teacher_parameters`` the teacher's (``None`` for finetune)
``processes``          processes (DDP ranks) that trained
``timings``            wall and CPU seconds per phase: ``fit``, ``eval``, ``teacher_cache`` ...
``details``            what only this kind has (QA windows and stride, corpus paths, encode speed ...)
=====================  ==============================================================
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from alembert.config.load import dump_yaml
from alembert.files import (
    check_output_dir,
    finish_output,
    prepare_output_dir,
    run_dir,
    write_json_atomic,
    write_text_atomic,
)
from alembert.training.checkpoint import latest_checkpoint, read_signature
from alembert.training.hub import check_push_target, push_folder
from alembert.training.logger import RunLogger
from alembert.training.loop import Callbacks, FitResult, FitSpec, fit
from alembert.training.resume import check, config_signature, data_signature
from alembert.training.setup import make_accelerator

SCHEMA = (
    "command",
    "kind",
    "task",
    "model",
    "teacher",
    "recipe",
    "main_metric",
    "dev",
    "teacher_dev",
    "retention",
    "best_step",
    "last_dev",
    "steps",
    "stages",
    "train_examples",
    "dev_examples",
    "train_seconds",
    "samples_per_second",
    "parameters",
    "teacher_parameters",
    "processes",
    "timings",
    "details",
)


def find_unused_parameters(recipe=None, unused_modules: bool = False) -> bool:
    """The one DDP rule. True when some trained parameter gets no gradient in a step: a stage
    whose terms never read the prediction head (:attr:`Recipe.find_unused_parameters`), or a
    model with modules off the loss path (``unused_modules``: an embedding student's pooler).
    Fine-tuning's own loss reaches every parameter (False)."""
    return unused_modules or (recipe is not None and recipe.find_unused_parameters)


def retention(dev: dict, teacher_dev: dict, main: str) -> float | None:
    return round(100 * dev.get(main, 0) / teacher_dev[main], 2) if teacher_dev.get(main) else None


def card_view(summary: dict) -> dict:
    """The summary under the names the model-card writers read (``student``,
    ``student_parameters``, a kind's details at the top level)."""
    return {**summary["details"], **summary, "student": summary["model"], "student_parameters": summary["parameters"]}


class Run:
    """One training command's run: see the module docstring for the order it enforces.

    ``cfg`` is the command's typed config (``output_dir``, ``overwrite``, ``resume``, and the
    optional ``dry_run`` and ``push_to_hub``); ``callbacks`` observe every stage's ``fit``."""

    def __init__(self, command: str, cfg, callbacks: Callbacks | None = None):
        self.command, self.cfg = command, cfg
        self.created = time.time()
        self.callbacks = callbacks or Callbacks()
        self.timers = self.callbacks.timers
        self.dry_run = bool(getattr(cfg, "dry_run", False))
        self.push_to = getattr(cfg, "push_to_hub", None)
        check_output_dir(
            cfg.output_dir, cfg.overwrite, cfg.resume
        )  # checks only (writable, not in use): nothing is created
        self.resume = latest_checkpoint(run_dir(cfg.output_dir, cfg.overwrite, cfg.resume)) if cfg.resume else None
        self.config_signature = config_signature(cfg)
        force = bool(getattr(cfg, "resume_force", False))
        saved = read_signature(self.resume[0]) if self.resume else None
        self.saved_signature = saved or {}
        self.resume_changes = check(saved and saved.get("config"), self.config_signature, force, "config")
        if self.push_to:
            check_push_target(self.push_to)
        self.accelerator = None
        self.out: Path | None = None
        self.logger: RunLogger | None = None
        self.stages: list[dict] = []
        self.samples = 0
        self.fit_seconds = 0.0
        self.started: float | None = None
        self.last: dict = {}

    # ------------------------------------------------------------------ set-up
    def make_accelerator(self, train, recipe=None, unused_modules: bool = False):
        self.accelerator = make_accelerator(
            train, find_unused_parameters=find_unused_parameters(recipe, unused_modules)
        )
        return self.accelerator

    @contextmanager
    def cache_guard(self):
        """Shared on-disk caches are built by one process while the others wait, then read by
        them: the main process first, then each node's local main (a cache folder local to
        each node), then the rest. Two processes never write one cache at once."""
        acc = self.accelerator
        with acc.main_process_first(), acc.local_main_process_first():
            yield

    @contextmanager
    def timed(self, name: str):
        with self.timers(name):
            yield

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def open(self, config_name: str, resolved) -> Path:
        """Every check has passed: create the output folder, the logger, the resolved config."""
        assert not self.dry_run, "a dry run writes nothing"
        self.out = prepare_output_dir(self.cfg.output_dir, self.cfg.overwrite, self.cfg.resume)
        acc = self.accelerator
        self.logger = RunLogger(
            self.out / "log.jsonl",
            enabled=acc.is_main_process,
            append=self.cfg.resume,
            accelerator=acc,
            config=self.cfg.model_dump(mode="json"),
        )
        if acc.is_main_process:
            write_text_atomic(self.out / config_name, dump_yaml(resolved))
        return self.out

    # ------------------------------------------------------------------ stages
    def stage_resume(self, i: int):
        """None when stage ``i`` starts fresh; ``"done"`` when it finished before an interruption
        (its result lives in the checkpoint); else the checkpoint to continue it from."""
        if self.resume is None:
            return None
        if self.resume[1].stage > i:
            return "done"
        return self.resume if self.resume[1].stage == i else None

    def resumed_model_config(self, i: int) -> dict | None:
        """The model config the checkpoint stage ``i`` continues from was saved with (``FitSpec.model_config``),
        or None (stage ``i`` does not resume, or trains the model the command builds)."""
        resume = self.stage_resume(i)
        return self.saved_signature.get("model_config") if isinstance(resume, tuple) else None

    def fit(self, module, loader, sampler, spec: FitSpec, on_best=None, name: str | None = None) -> FitResult:
        """Train one stage and record it for ``metrics.json``."""
        if self.started is None:
            self.started = time.time()
        spec.run_dir = spec.run_dir or self.out
        data = data_signature(loader)
        if spec.resume is not None and self.saved_signature.get("stage") == spec.stage:
            force = bool(getattr(self.cfg, "resume_force", False))
            self.resume_changes += check(self.saved_signature.get("data"), data, force, "training data")
        spec.signature = {"config": self.config_signature, "stage": spec.stage, "data": data}
        if spec.model_config is not None:
            spec.signature["model_config"] = spec.model_config
        # the command's on_best (saving the model) first, so an observer sees the best model on disk
        callbacks = Callbacks(on_best=on_best, timers=self.timers).chain(self.callbacks) if on_best else self.callbacks
        result = fit(module, loader, sampler, spec, self.accelerator, self.logger, callbacks)
        self.samples += result.samples
        self.fit_seconds += result.train_seconds - result.eval_seconds
        self.last = result.last
        self.stages.append(
            {
                "stage": name or "train",
                "steps": result.steps,
                "seconds": round(result.train_seconds, 1),
                "best_dev": result.best,
                "best_step": result.best_step,
            }
        )
        return result

    # ------------------------------------------------------------------ the end
    def summary(
        self,
        *,
        kind: str,
        task: str,
        model: str,
        main_metric: str,
        train_examples: int,
        dev_examples: int,
        parameters: int,
        teacher: str | None = None,
        recipe: str | None = None,
        teacher_parameters: int | None = None,
        dev: dict | None = None,
        teacher_dev: dict | None = None,
        retention_value=None,
        details: dict | None = None,
    ) -> dict:
        """The ``metrics.json`` dict (see the module docstring), from the stages run so far."""
        best = self.stages[-1] if self.stages else {"best_dev": {}, "best_step": 0}
        dev = best["best_dev"] if dev is None else dev
        teacher_dev = teacher_dev or {}
        summary = {
            "command": self.command,
            "kind": kind,
            "task": task,
            "model": model,
            "teacher": teacher,
            "recipe": recipe,
            "main_metric": main_metric,
            "dev": dev,
            "teacher_dev": teacher_dev,
            "retention": retention(dev, teacher_dev, main_metric) if retention_value is None else retention_value,
            "best_step": best["best_step"],
            "last_dev": self.last or best["best_dev"],
            "steps": sum(s["steps"] for s in self.stages),
            "stages": self.stages,
            "train_examples": train_examples,
            "dev_examples": dev_examples,
            "train_seconds": round(time.time() - self.started, 1) if self.started else 0.0,
            "samples_per_second": round(self.samples / max(self.fit_seconds, 1e-9), 1),
            "parameters": parameters,
            "teacher_parameters": teacher_parameters,
            "processes": self.accelerator.num_processes,
            "timings": self.timers.as_dict(),
            "details": (details or {})
            | ({"resume_forced": self.resume_changes} if self.resume_changes else {}),  # --resume-force accepted these
        }
        assert tuple(summary) == SCHEMA
        return summary

    def finish(self, summary: dict, card=None) -> dict:
        """``metrics.json``, the card (``card(out, summary)``), the files into place, the push."""
        self.logger.close()
        if self.is_main:
            write_json_atomic(self.out / "metrics.json", summary)
            if card is not None:
                card(self.out, summary)
        final = finish_output(self.out)  # an --overwrite run's files replace the previous run's only now
        if self.push_to and self.is_main:
            summary_url = push_folder(final, self.push_to, f"alembert {self.command}: {summary['model']}")
            print(f"pushed to {summary_url}", flush=True)
        return summary

    def plan(self, **kw) -> dict:
        """``--dry-run``: see :func:`alembert.training.plan.estimate`."""
        from alembert.training.plan import estimate

        return estimate(self, **kw)
