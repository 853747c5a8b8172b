"""Load tokenizers and task models from a resolved directory, safely and quietly.

Remote code never runs: every ``from_pretrained`` here passes ``trust_remote_code=False`` (so
transformers never asks "Do you wish to run the custom code? [y/N]"), and a folder that
would need custom code (an ``auto_map`` for a ``model_type`` transformers does not ship) is
refused with one line before transformers is asked (:func:`refuse_remote_code`). Damaged
weight files (a truncated ``model.safetensors``) are a one-line error too.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Protocol

import transformers
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from alembert.errors import AlembertError, brief
from alembert.models.resolve import resolve_model


class Labels(Protocol):
    """What a classification head needs of a task: its name (for errors), whether it is a
    regression (one score) and its class names in id order. ``data.tasks.TaskSpec`` is one; the
    protocol keeps ``models/`` from importing ``data/``."""

    name: str
    label_names: tuple[str, ...] | None

    @property
    def is_regression(self) -> bool: ...


def refuse_remote_code(path: Path, what: str) -> None:
    """A one-line error for a folder whose config or tokenizer names custom code (``auto_map``)
    that transformers would have to import to load it; alembert never runs remote code."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    for file in ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json"):
        try:
            data = json.loads((Path(path) / file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not data.get("auto_map"):
            continue
        model_type = data.get("model_type")
        if file != "config.json" or model_type not in CONFIG_MAPPING:
            raise AlembertError(
                f"{what}: {file} in {path} needs custom code ({', '.join(sorted(data['auto_map']))} in auto_map"
                f"{'' if model_type in CONFIG_MAPPING or model_type is None else f', model_type {model_type!r}'}); "
                "alembert never runs code shipped with a model: use a model family that transformers ships"
            )


def load_tokenizer(name: str | Path):
    path = resolve_model(name)
    refuse_remote_code(path, f"model {name}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise AlembertError(
            f"model {name}: no usable tokenizer in {path} ({exc.__class__.__name__}); "
            "save the tokenizer beside the weights"
        ) from None
    files = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
    if Path(path).is_dir() and not any((Path(path) / f).is_file() for f in files):
        # transformers 5 then builds a tokenizer of special tokens alone, silently
        raise AlembertError(
            f"model {name}: no usable tokenizer in {path} (no tokenizer files: a vocabulary of special tokens "
            "only); save the tokenizer beside the weights"
        )
    return tokenizer


def load_config(name: str | Path):
    path = resolve_model(name)
    refuse_remote_code(path, f"model {name}")
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise AlembertError(
            f"model {name}: unreadable config.json in {path} ({exc}); pass a folder saved with save_pretrained"
        ) from None


def quiet_from_pretrained(cls, path: Path, what: str, hint: str = "pass a folder saved with save_pretrained", **kwargs):
    """``cls.from_pretrained(path, **kwargs)`` with remote code off and transformers' expected
    warnings silenced; a load failure becomes one line naming ``what``, ``path`` and ``hint``.

    Weights come from safetensors when present; a ``.bin`` goes through transformers'
    ``torch.load(weights_only=True)``, so a pickle holding anything but tensors is refused.
    """
    from safetensors import SafetensorError

    refuse_remote_code(path, what)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        return cls.from_pretrained(path, trust_remote_code=False, **kwargs)
    except SafetensorError as exc:
        raise AlembertError(
            f"{what}: the weights in {path} are damaged ({brief(exc, 120)}); "
            "the file is truncated or corrupt: copy or save the model again"
        ) from None
    except pickle.UnpicklingError:
        raise AlembertError(
            f"{what}: the pickled weights in {path} hold objects other than tensors and were refused "
            "(torch.load weights_only=True); re-save the model as safetensors where you trust it"
        ) from None
    except (OSError, ValueError) as exc:
        raise AlembertError(
            f"{what}: could not load from {path} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); {hint}"
        ) from None
    finally:
        transformers.logging.set_verbosity(verbosity)


def is_task_model(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def label_kwargs(task: Labels) -> dict:
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


def load_classifier(name: str | Path, task: Labels, attn: str | None = None):
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


_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "data2vec-text", "xlm-roberta-xl")


def max_positions(config) -> int | None:
    """Tokens the model can take: ``max_position_embeddings`` (less the ``padding_idx + 1``
    positions that RoBERTa-style position ids skip), or None when the config does not say."""
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or n <= 0:
        return None
    if config.model_type in _OFFSET_POSITIONS:
        n -= (getattr(config, "pad_token_id", None) or 0) + 1
    return n


def check_max_length(config, max_length: int, name, flag: str = "--max-length") -> None:
    """Refuse, before any compute, a ``max_length`` longer than the model's position table: it
    would fail mid-training (an index error in the embeddings) after the output was created."""
    limit = max_positions(config)
    if limit is not None and max_length > limit:
        raise AlembertError(
            f"{flag} {max_length} is longer than model {name} can take ({limit} positions, "
            f"max_position_embeddings {config.max_position_embeddings}); pass {flag} {limit} or less"
        )


def param_counts(model, skip: str | None = None) -> tuple[int, int]:
    """(all parameters, those outside the embeddings) of ``model``, leaving out the submodule named
    ``skip`` (e.g. ``pooler``, which sentence embeddings never read): the one parameter count."""
    total = embeddings = 0
    for name, p in model.named_parameters():
        if skip and f".{skip}." in f".{name}":
            continue
        total += p.numel()
        if ".embeddings." in f".{name}":
            embeddings += p.numel()
    return total, total - embeddings


def n_params(model) -> int:
    """Parameters of a model (embeddings included), the figure every summary and card reports."""
    return param_counts(model)[0]
