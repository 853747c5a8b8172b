"""Registry of the GLUE tasks: where each task's files live and how to read them.

A :class:`TaskSpec` says which columns of the original GLUE TSV files hold the
texts and the label, which raw label strings map to which class id, and which
official metrics GLUE reports for the task. Use :func:`get_task` to look a task
up by name; it accepts the usual spellings ("SST-2", "sst2", "mnli_mismatched").
The class-id order of every task matches the Hugging Face ``glue`` datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembert.errors import AlembertError


@dataclass(frozen=True)
class TaskSpec:
    """How to read and score one GLUE task."""

    name: str  # canonical name: "sst2", "mnli-mm", ...
    glue_dir: str  # folder under glue_data, e.g. "SST-2"
    train_file: str
    dev_file: str
    text_a: str | int  # column name, or column index for headerless files (CoLA)
    text_b: str | int | None  # second text column for sentence-pair tasks, else None
    label: str | int  # label column name or index
    has_header: bool
    label_values: tuple[str, ...] | None  # raw label strings in class-id order; None = regression
    label_names: tuple[str, ...] | None  # human-readable names (id2label), same order
    metrics: tuple[str, ...]  # official GLUE metrics
    main_metric: str  # metrics[0]; picks the best checkpoint

    @property
    def is_regression(self) -> bool:
        """True for STS-B, whose label is a similarity score, not a class."""
        return self.label_values is None

    @property
    def num_labels(self) -> int:
        """Number of classes (1 for regression: a single output score)."""
        return 1 if self.label_values is None else len(self.label_values)

    @property
    def is_pair(self) -> bool:
        """True when each example is a pair of texts (text_a, text_b)."""
        return self.text_b is not None


def _task(
    name, glue_dir, text_a, text_b, label, values, names, metrics, *, dev_file="dev.tsv", has_header=True
) -> TaskSpec:
    return TaskSpec(
        name=name,
        glue_dir=glue_dir,
        train_file="train.tsv",
        dev_file=dev_file,
        text_a=text_a,
        text_b=text_b,
        label=label,
        has_header=has_header,
        label_values=values,
        label_names=names,
        metrics=metrics,
        main_metric=metrics[0],
    )


#: tokens per input of a classification run when neither a flag nor the model says: GLUE's sentences and
#: pairs fit (the BERT papers' length). Read by the classification task kind and by export's dev scoring.
MAX_LENGTH = 128

_BINARY = ("0", "1")
_NLI3 = ("entailment", "neutral", "contradiction")
_ENT2 = ("entailment", "not_entailment")

#: All GLUE tasks by canonical name. MNLI appears twice: matched and mismatched dev sets.
TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        _task("cola", "CoLA", 3, None, 1, _BINARY, ("unacceptable", "acceptable"), ("mcc",), has_header=False),
        _task("sst2", "SST-2", "sentence", None, "label", _BINARY, ("negative", "positive"), ("accuracy",)),
        _task(
            "mrpc",
            "MRPC",
            "#1 String",
            "#2 String",
            "Quality",
            _BINARY,
            ("not_equivalent", "equivalent"),
            ("f1", "accuracy"),
        ),
        _task("stsb", "STS-B", "sentence1", "sentence2", "score", None, None, ("pearson", "spearman")),
        _task(
            "qqp",
            "QQP",
            "question1",
            "question2",
            "is_duplicate",
            _BINARY,
            ("not_duplicate", "duplicate"),
            ("f1", "accuracy"),
        ),
        _task(
            "mnli",
            "MNLI",
            "sentence1",
            "sentence2",
            "gold_label",
            _NLI3,
            _NLI3,
            ("accuracy",),
            dev_file="dev_matched.tsv",
        ),
        _task(
            "mnli-mm",
            "MNLI",
            "sentence1",
            "sentence2",
            "gold_label",
            _NLI3,
            _NLI3,
            ("accuracy",),
            dev_file="dev_mismatched.tsv",
        ),
        _task("qnli", "QNLI", "question", "sentence", "label", _ENT2, _ENT2, ("accuracy",)),
        _task("rte", "RTE", "sentence1", "sentence2", "label", _ENT2, _ENT2, ("accuracy",)),
        _task(
            "wnli", "WNLI", "sentence1", "sentence2", "label", _BINARY, ("not_entailment", "entailment"), ("accuracy",)
        ),
    ]
}

# Extra spellings, after lower-casing and dropping "-", "_", " " and a "glue/" prefix.
_ALIASES = {
    "mnlim": "mnli",
    "mnlimatched": "mnli",
    "mnlimm": "mnli-mm",
    "mnlimismatched": "mnli-mm",
    "stsbenchmark": "stsb",
}


def task_names() -> list[str]:
    """Canonical task names, in GLUE order."""
    return list(TASKS)


def get_task(name: str) -> TaskSpec:
    """Look up a task by name, case-insensitively ("SST-2", "sst2", "mnli_mismatched")."""
    key = str(name).strip().lower()
    for prefix in ("glue/", "glue:"):
        key = key.removeprefix(prefix)
    key = key.replace("-", "").replace("_", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key in TASKS:
        return TASKS[key]
    raise AlembertError(
        f"unknown task {name!r}; pass --task with one of: {', '.join(task_names())} "
        "(or omit --task and pass your own --train-file/--dev-file)"
    )


def custom_task(label_names: list[str] | tuple[str, ...] | None, is_pair: bool = False) -> TaskSpec:
    """A task for user data that is not GLUE: classification over ``label_names``
    (scored by accuracy), or regression when ``label_names`` is None (Pearson/Spearman)."""
    names = None if label_names is None else tuple(str(n) for n in label_names)
    metrics = ("pearson", "spearman") if names is None else ("accuracy",)
    return _task("custom", "", "text", "text_pair" if is_pair else None, "label", names, names, metrics)
