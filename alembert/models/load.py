"""Load tokenizers and task models from a resolved directory, safely and quietly."""

from __future__ import annotations

from pathlib import Path

import transformers
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from alembert.data.tasks import TaskSpec
from alembert.errors import AlembertError
from alembert.models.resolve import resolve_model


def load_tokenizer(name: str | Path):
    path = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise AlembertError(f"model {name}: no usable tokenizer in {path} ({exc.__class__.__name__}); save the tokenizer beside the weights") from None


def load_config(name: str | Path):
    path = resolve_model(name)
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise AlembertError(f"model {name}: unreadable config.json in {path} ({exc}); pass a folder saved with save_pretrained") from None


def is_task_model(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def label_kwargs(task: TaskSpec) -> dict:
    """num_labels / id2label / problem_type for a task's head."""
    if task.is_regression:
        return {"num_labels": 1, "problem_type": "regression", "id2label": {0: "score"}, "label2id": {"score": 0}}
    names = list(task.label_names)
    return {
        "num_labels": len(names),
        "problem_type": "single_label_classification",
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def load_classifier(name: str | Path, task: TaskSpec, attn: str | None = None):
    """A sequence-classification model for ``task``.

    A saved task model must have the task's number of labels; a base encoder
    (no classification head) gets a freshly initialised head. Weights come from
    safetensors when present; remote code is never run. ``attn="eager"`` is needed
    for attention maps; ``None`` lets transformers pick its fastest kernel (SDPA where
    the family supports it: BERT yes, MPNet no).
    """
    path = resolve_model(name)
    config = load_config(path)
    want = label_kwargs(task)
    if is_task_model(config) and config.num_labels != want["num_labels"]:
        raise AlembertError(
            f"model {name} has a {config.num_labels}-label head but task {task.name} needs {want['num_labels']}; "
            "pass a model fine-tuned on this task, or its base encoder"
        )
    kwargs = want if not is_task_model(config) else {}
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the 'newly initialised head' warning is expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, trust_remote_code=False, **({"attn_implementation": attn} if attn else {}), **kwargs
        )
    except (OSError, ValueError) as exc:
        raise AlembertError(f"model {name}: could not load weights from {path} ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    if task.is_regression:
        model.config.problem_type = "regression"
    return model
