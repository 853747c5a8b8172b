"""Load tokenizers and task models from a resolved directory, safely and quietly."""

from __future__ import annotations

import pickle
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


def quiet_from_pretrained(cls, path: Path, what: str, hint: str = "pass a folder saved with save_pretrained", **kwargs):
    """``cls.from_pretrained(path, **kwargs)`` with remote code off and transformers' expected
    warnings silenced; a load failure becomes one line naming ``what``, ``path`` and ``hint``.

    Weights come from safetensors when present; a ``.bin`` goes through transformers'
    ``torch.load(weights_only=True)``, so a pickle holding anything but tensors is refused.
    """
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        return cls.from_pretrained(path, trust_remote_code=False, **kwargs)
    except pickle.UnpicklingError:
        raise AlembertError(f"{what}: the pickled weights in {path} hold objects other than tensors and were refused "
                            "(torch.load weights_only=True); re-save the model as safetensors where you trust it") from None
    except (OSError, ValueError) as exc:
        raise AlembertError(f"{what}: could not load from {path} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); {hint}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)


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
    if attn:
        kwargs["attn_implementation"] = attn
    model = quiet_from_pretrained(AutoModelForSequenceClassification, path, f"model {name}", **kwargs)
    if task.is_regression:
        model.config.problem_type = "regression"
    return model
