"""What a task kind is: everything a command needs to know about one family of tasks.

A command (``finetune``, ``distill``, ``evaluate``, ``bench``) does not ask which task it was
given; it asks :func:`task_kind` for the kind that handles ``--task`` and calls that kind's
entry point. A kind says which task names it answers to, which model class it trains and
its pipeline tag (its runs hand the kind to the model card), its main metric, and how to load
a split, featurise it and evaluate a model on it. The entry points delegate to the kind's own
package (``classification/``, ``qa/``, ``embedding/``).

Defining a subclass with a ``name`` registers it (:data:`KINDS`), the way loss terms do;
:mod:`alembert.tasks` imports every module of the package, so adding a kind is adding a file.
A kind defined elsewhere (a plug-in, a test) registers the same way once its module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from alembert.errors import AlembertError

#: name -> TaskKind subclass, filled by ``TaskKind.__init_subclass__``, in definition order.
KINDS: dict[str, type[TaskKind]] = {}


def normalise(task: str | None) -> str | None:
    """The spelling kinds compare: stripped, lower case (``" SQuAD"`` -> ``"squad"``)."""
    return None if task is None else str(task).strip().lower()


@dataclass
class Evaluation:
    """What ``alembert evaluate`` prints and writes: the task's name, the number of examples
    scored (None when the metric does not count examples), the table's title, the metrics and
    the max length used (recorded in eval_results.json; None for a kind that has none)."""

    task: str
    examples: int | None
    title: str
    metrics: dict[str, float]
    max_length: int | None


@dataclass
class Peer:
    """What a user would pick instead of distilling, measured beside the frontier's students: a model as it
    ships (``path``), or one ``make(folder, resume)`` writes (a fine-tuning run, ``model2vec.distill``), complete
    when ``done(folder)``; ``estimate(folder)``: the seconds ``make`` will take (a dry run), where it trains."""

    name: str
    why: str
    path: str | None = None
    make: Callable[[Path, bool], Any] | None = None
    estimate: Callable[[Path], float] | None = None
    done: Callable[[Path], bool] = lambda folder: (folder / "config.json").is_file()


class TaskKind:
    """One family of tasks. Subclasses set the class attributes and override what they support;
    an entry point a kind does not support is a one-line error naming the command that does."""

    name: ClassVar[str] = ""  # registry key, also the ``kind`` of metrics.json and the saved preprocessing record
    description: ClassVar[str] = ""  # a few words for the error listing every task ("extractive QA")
    task_names: ClassVar[tuple[str, ...]] = ()  # the --task names it answers to (canonical spellings)
    model_class: ClassVar[str] = ""  # the class that loads its models (the model card says it): AutoModelFor...
    pipeline_tag: ClassVar[str] = ""  # the model card's pipeline tag
    max_length: ClassVar[int] = 128  # tokens per input when neither a flag nor the model says (see default_max_length)
    evaluate_flags: ClassVar[tuple[str, ...]] = ()  # the kind's own ``evaluate`` flags (args names); others refused
    sentence_encoder: ClassVar[bool] = False  # its models embed sentences: the student builders offer static ones
    #: ``train`` fields a frontier student of this kind starts from where the user set none (its recipe's usual ones)
    student_train: ClassVar[dict] = {}
    #: the recipe a frontier candidate falls back on when the kind's own cannot train it (None: no other)
    fallback_recipe: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in KINDS and KINDS[cls.name].__qualname__ != cls.__qualname__:
                raise TypeError(
                    f"task kind {cls.name!r} defined twice ({KINDS[cls.name].__qualname__}, {cls.__qualname__})"
                )
            KINDS[cls.name] = cls

    # ------------------------------------------------------------ which tasks
    def handles(self, task: str | None) -> bool:
        """True when ``--task task`` is this kind's (default: one of :attr:`task_names`)."""
        return normalise(task) in self.task_names

    def main_metric(self, task: str | None) -> str:
        """The metric that picks the best checkpoint and the retention figure."""
        raise NotImplementedError

    # ------------------------------------------------------------ the max length
    def default_max_length(self, model) -> int:
        """The max length of a run on ``model`` (a folder, alias or hub id) when no flag sets one:
        the length it was trained with (the preprocessing record in its ``config.json``, when that
        record is this kind's), else :attr:`max_length`. The one place a default length is chosen:
        every command resolves ``data.max_length`` through it (:meth:`resolve_max_length`)."""
        from alembert.errors import AlembertError
        from alembert.models.preprocessing import saved
        from alembert.models.resolve import resolve_model

        try:
            rec = saved(resolve_model(model))
        except AlembertError:  # not a model: the run that loads it says so, in its own words
            rec = {}
        if rec.get("max_length") and rec.get("task_kind", self.name) == self.name:
            return int(rec["max_length"])
        return self.max_length

    def resolve_max_length(self, cfg, model):
        """``cfg`` (any config with a ``data`` section) with ``data.max_length`` set: the flag's
        (or YAML's) value when given, else :meth:`default_max_length` of ``model``. Runs, saved
        configs, ``metrics.json``, cards and ``eval_results.json`` then all see the length used."""
        return cfg if cfg.data.max_length is not None else with_max_length(cfg, self.default_max_length(model))

    # ------------------------------------------------------------ data and models
    def load_split(self, data, split: str, **kw) -> Any:
        """The raw ``"train"`` or ``"dev"`` examples of ``data`` (a DataConfig)."""
        raise NotImplementedError

    def featurise(self, examples, tokenizer, data) -> Any:
        """Model inputs of ``examples`` (tokenised, cached where the kind caches)."""
        raise NotImplementedError

    def load_model(self, name, **kw):
        """A model of :attr:`model_class` from a folder, alias or hub id."""
        raise NotImplementedError

    def evaluate_model(self, model, tokenizer, data, batch_size: int) -> dict[str, float]:
        """The dev metrics of a loaded model on ``data``'s dev split."""
        raise NotImplementedError

    # ------------------------------------------------------------ the commands' entry points
    def finetune(self, cfg, callbacks=None) -> dict:
        """``alembert finetune``: the ``metrics.json`` summary (or the dry-run plan)."""
        raise self._unsupported("finetune", cfg.data.task)

    def distill(self, cfg, callbacks=None) -> dict:
        """``alembert distill``: the ``metrics.json`` summary (or the dry-run plan)."""
        raise self._unsupported("distill", cfg.data.task)

    def distill_student(self, fc, student: dict, train: dict, output_dir, recipe: str | None = None, **run) -> dict:
        """``alembert frontier``: one candidate ``student`` (the ``student`` config section) of ``fc.teacher``
        (a :class:`~alembert.config.schema.FrontierConfig`) trained by this kind's own run and recipe (or
        ``recipe``) on ``fc``'s data, ``train`` over ``fc.train``, into ``output_dir``; ``run``: ``dry_run``,
        ``resume``, ``overwrite``. The run's ``metrics.json`` summary, or its plan for a dry run."""
        raise self._unsupported("frontier", fc.data.task)

    def peers(self, fc) -> list[Peer]:
        """The tools a user of this kind would pick instead (``alembert frontier`` measures them in its bench run,
        where they are installed): default none."""
        return []

    def export_data(self, data) -> dict:
        """The fields of ``data`` (a DataConfig) that ``export --quantize auto`` scores and calibrates its
        variants on (default: every data field it reads that is set)."""
        from alembert.export.auto import DATA_FIELDS

        return {k: v for k, v in data.model_dump().items() if k in DATA_FIELDS and v is not None}

    def evaluate(self, cfg, args) -> Evaluation:
        """``alembert evaluate``: ``cfg`` is the EvaluateConfig, ``args`` the parsed flags (for
        kind-specific ones such as ``--pooling``)."""
        raise self._unsupported("evaluate", cfg.data.task)

    def bench(
        self,
        task: str | None,
        data_dir,
        max_eval_samples: int | None,
        n_texts: int,
        eval_batch_size: int,
        data: dict | None = None,
        reference=None,
    ):
        """``alembert bench``: the :class:`~alembert.measure.bench_task.BenchTask` that scores and times models."""
        raise self._unsupported("bench", task)

    def _unsupported(self, command: str, task) -> AlembertError:
        hint = self.unsupported_hint(command)
        return AlembertError(
            f"alembert {command} does not take --task {task} ({self.description or self.name})"
            + (f"; {hint}" if hint else "")
        )

    def unsupported_hint(self, command: str) -> str:
        """What to run instead of ``command`` for this kind's tasks (a few words, or "")."""
        return ""


def with_max_length(cfg, length: int):
    """A copy of ``cfg`` whose ``data.max_length`` is ``length``."""
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"max_length": int(length)})})


def kinds() -> list[TaskKind]:
    """One instance of every registered kind, in registration order."""
    return [cls() for cls in KINDS.values()]


def known_tasks() -> str:
    """Every --task name by kind, for error messages: ``cola, sst2, ... (classification); squad (extractive QA)``."""
    return "; ".join(f"{', '.join(k.task_names)} ({k.description or k.name})" for k in kinds() if k.task_names)


def task_kind(task: str | None) -> TaskKind:
    """The kind that handles ``--task task`` (None: your own files, or sst2); an unknown task is a
    one-line error listing every known one."""
    for kind in kinds():
        if kind.handles(task):
            return kind
    raise AlembertError(
        f"unknown task {task!r}; pass --task with one of: {known_tasks()} "
        "(or omit --task and pass your own --train-file/--dev-file)"
    )
