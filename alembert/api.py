"""alembert from Python: ``alembert.finetune(...)``, ``distill``, ``distill_general``, ``adapt_mlm``, ``evaluate``,
``export`` and ``bench``.

Not a second implementation: each call builds the command's own argparse namespace (the CLI's
defaults), sets what the keywords say, and runs the command's ``execute`` (alembert/cli/*.py),
the function its CLI ``run`` prints the result of. So a keyword, a YAML file and a flag reach the
same typed config (alembert/config/schema.py), the same dispatch (the task kind of ``task=``: ``task="squad"``
reaches the QA runner) and the same one-line :class:`~alembert.errors.AlembertError`.

Keywords are the command's flag names with ``_`` for ``-`` (``max_train_samples=200`` is
``--max-train-samples 200``; a string is parsed as the flag parses it, ``labels="neg,pos"``), or its
config fields (``train={"lr": 3e-5}``, ``cache_teacher=False``), or ``set={"train.lr": 3e-5}`` for any
dotted field. ``config=`` takes a YAML path, a config object or a dict, under the keywords.

A model (``model=``, ``teacher=``, ``student=``) may be a path, an alias, a hub id or an already
loaded ``PreTrainedModel`` (or sentence-transformers model): an object is saved, with ``tokenizer=``
(default: the tokenizer of the folder it was loaded from), to a temporary folder for the duration
of the call, and the commands read that folder as they read any other.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembert.errors import AlembertError, brief


@dataclass
class Result:
    """What a call did. ``metrics``: the dev metrics of the model trained or evaluated (an export's
    checks; a benchmark's row of each model, by name). ``summary``: everything the command reports (its metrics.json,
    bench.json or export info). ``config``: the resolved typed config (None for export and bench).
    ``files``: name -> path of the files written at the top of ``output_dir``. ``task_stage``: the
    task distillation after ``distill_general(then_task=...)``."""

    command: str
    metrics: dict[str, Any]
    output_dir: Path | None
    summary: dict[str, Any]
    config: Any = None
    files: dict[str, Path] = field(default_factory=dict)
    task_stage: Result | None = None


def finetune(config=None, **kwargs) -> Result:
    """``alembert finetune``: train ``model`` on a task and keep the best checkpoint in ``output``."""
    from alembert.cli import finetune as command
    from alembert.config.schema import FinetuneConfig

    with contextlib.ExitStack() as stack:
        args = _namespace("finetune", command, FinetuneConfig, config, kwargs, stack)
        cfg, s = command.execute(args)
    return _result("finetune", cfg, s, s["dev"])


def distill(config=None, **kwargs) -> Result:
    """``alembert distill``: distil a fine-tuned ``teacher`` into a student with a ``recipe``."""
    from alembert.cli import distill as command
    from alembert.config.schema import DistillConfig

    with contextlib.ExitStack() as stack:
        args = _namespace("distill", command, DistillConfig, config, kwargs, stack)
        cfg, s = command.execute(args)
    return _result("distill", cfg, s, s["dev"])


def distill_general(config=None, **kwargs) -> Result:
    """``alembert distill-general``: task-agnostic (or sentence-embedding) distillation on raw text;
    ``then_task=`` with ``task_teacher=`` runs the task stage next (in ``result.task_stage``)."""
    from alembert.cli import distill_general as command
    from alembert.config.schema import DistillGeneralConfig

    with contextlib.ExitStack() as stack:
        args = _namespace("distill-general", command, DistillGeneralConfig, config, kwargs, stack)
        cfg, s, task = command.execute(args)
    result = _result("distill-general", cfg, s, s["dev"])
    if task is not None:
        result.task_stage = _result("distill", task[0], task[1], task[1]["dev"])
    return result


def adapt_mlm(config=None, **kwargs) -> Result:
    """``alembert adapt-mlm``: a masked-LM head for ``model`` (tied to its embeddings), trained alone,
    then with the whole model on ``corpus``; the best model by held-out masked-token top-1 in ``output``."""
    from alembert.cli import adapt_mlm as command
    from alembert.config.schema import AdaptMLMConfig

    with contextlib.ExitStack() as stack:
        args = _namespace("adapt-mlm", command, AdaptMLMConfig, config, kwargs, stack)
        cfg, s = command.execute(args)
    return _result("adapt-mlm", cfg, s, s.get("dev", {}))


def evaluate(model, config=None, **kwargs) -> Result:
    """``alembert evaluate MODEL``: official dev metrics; eval_results.json in ``output`` (default:
    the model folder when writable; for a model object, only where ``output`` says)."""
    from alembert.cli import evaluate as command
    from alembert.config.schema import EvaluateConfig

    with contextlib.ExitStack() as stack:
        path = _model_path(model, kwargs.pop("tokenizer", None), stack)
        args = _namespace("evaluate", command, EvaluateConfig, config, kwargs, stack, positional=[path])
        r = command.execute(args)
    kept = (
        r["eval_results"] is not None and r["eval_results"].is_file()
    )  # not when written into a model object's temporary folder
    files = {"eval_results.json": r["eval_results"]} if kept else {}
    out = r["eval_results"].parent if kept else None
    summary = {k: r[k] for k in ("task", "examples", "metrics", "note")}
    return Result("evaluate", r["metrics"], out, summary, r["config"], files)


def export(model, output, *, web: bool = False, tokenizer=None, **kwargs) -> Result:
    """``alembert export MODEL --onnx`` (``web=True``: ``--web``; ``openvino=True``: ``--openvino``); keywords as
    the flags: ``quantize="int8"``, ``opset``, ``overwrite``, ``full_last_layer``, ``node_modules``."""
    from alembert.cli import export as command

    with contextlib.ExitStack() as stack:
        path = _model_path(model, tokenizer, stack)
        args = _namespace("export", command, None, None, kwargs, stack, positional=[path, "--output", str(output)])
        args.onnx, args.web = not web and not args.openvino, web
        out, info = command.execute(args)
    return Result("export", info, Path(out), info, None, _files(out))


def bench(models, task=None, **kwargs) -> Result:
    """``alembert bench MODEL...``: size, dev metric and speed of ``models`` (the first is the
    reference) on ``task``; keywords as the flags (``repeats``, ``threads``, ``output``, ``dev_file``, ...)."""
    from alembert.cli import bench as command

    models = [models] if isinstance(models, str | Path) or hasattr(models, "save_pretrained") else list(models)
    with contextlib.ExitStack() as stack:
        paths = [_model_path(m, kwargs.pop("tokenizer", None) if i == 0 else None, stack) for i, m in enumerate(models)]
        args = _namespace("bench", command, None, None, {"task": task, **kwargs}, stack, positional=paths)
        r = command.execute(args)
    return Result("bench", {row["name"]: row for row in r["models"]}, Path(args.output), r, None, _files(args.output))


def frontier(config=None, **kwargs) -> Result:
    """``alembert frontier``: ``teacher``'s candidate students planned, trained within ``time_budget``
    (seconds, or ``"3h"``), exported and measured in one bench run; ``metrics`` is the chosen model's bench row
    (empty with no budget or none met); ``summary`` the whole frontier (``rows``, ``pareto``, ``why``)."""
    from alembert.cli import frontier as command
    from alembert.config.schema import FrontierConfig

    with contextlib.ExitStack() as stack:
        args = _namespace("frontier", command, FrontierConfig, config, kwargs, stack)
        cfg, s = command.execute(args)
    best = {r["name"]: r for r in s.get("rows", [])}.get(s.get("best"), {})
    return Result("frontier", best, Path(cfg.output_dir), s, cfg, _files(cfg.output_dir))


# --- the namespace a command's CLI would have parsed -------------------------------------------

MODEL_FIELDS = {"model", "teacher", "student", "task_teacher"}  # keywords that may carry a model object


def _namespace(
    name: str, command, cls, config, kwargs: dict, stack: contextlib.ExitStack, positional: list[str] | None = None
) -> argparse.Namespace:
    from alembert.cli.common import FIELDS

    parser = _parser(name, command)
    args = parser.parse_args(positional or [])
    options = {
        opt[2:].replace("-", "_"): action
        for action in parser._actions
        for opt in action.option_strings
        if opt.startswith("--")
    }
    fields = list(getattr(args, FIELDS, []))

    def put(dotted: str, value) -> None:
        if dotted not in fields:
            fields.append(dotted)
        setattr(args, dotted, value)

    if isinstance(config, str | Path):
        args.config = Path(config)
    elif config is not None:
        if cls is None or not isinstance(config, cls | dict):
            raise AlembertError(
                f"{name}: config= takes a YAML path, "
                f"a dict or a {cls.__name__ if cls else 'config'} object, got {type(config).__name__}"
            )
        tree = config if isinstance(config, dict) else config.model_dump(exclude_unset=True)
        for dotted, value in _flatten(cls, tree):
            put(dotted, value)
    tokenizer = kwargs.pop("tokenizer", None)
    for key, value in kwargs.items():
        if value is None:
            continue
        if (
            isinstance(value, dict) and cls is not None and key in cls.model_fields
        ):  # a section: student={"num_layers": 4}
            for dotted, v in _flatten(cls, {key: value}):
                put(dotted, v)
            continue
        if key in MODEL_FIELDS:
            value = _model_path(value, tokenizer, stack)
        if key == "set":
            items = value.items() if isinstance(value, dict) else None
            if items is None:  # "FIELD=VALUE" strings, as --set takes them
                args.set = [*(args.set or []), *([value] if isinstance(value, str) else value)]
            for dotted, v in items or ():
                put(dotted, v)
        elif key in options and options[key].dest != "help":
            action = options[key]
            if action.nargs == 0:  # an on/off switch: True turns it on
                if value is True:
                    setattr(args, action.dest, action.const)
                elif value is not False:
                    raise AlembertError(f"{name}: {key} is an on/off switch; pass {key}=True")
                continue
            if isinstance(value, str) and callable(action.type):  # a string reads as the flag reads it
                try:
                    value = action.type(value)
                except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
                    wanted = {"int": "a whole number", "float": "a number"}.get(
                        getattr(action.type, "__name__", ""), f"a value {action.option_strings[0]} takes"
                    )
                    raise AlembertError(f"{name}: {key}={value!r} is not {wanted} ({brief(exc, 80)})") from None
            elif action.type is None:
                value = _plain(value)
            setattr(args, action.dest, value)
        elif cls is not None and key in cls.model_fields:
            for dotted, v in _flatten(cls, {key: value}):
                put(dotted, v)
        else:
            known = sorted({*options, *(cls.model_fields if cls else ())} - {"help", "config", "debug"})
            raise AlembertError(
                f"{name}: unknown argument {key!r}; use one of {', '.join(known)}, or set={{'section.field': value}}"
            )
    setattr(args, FIELDS, fields)
    return args


def _parser(name: str, command) -> argparse.ArgumentParser:
    """The command's own parser, as ``alembert NAME`` builds it."""
    from alembert.cli.common import no_abbreviations

    sub = argparse.ArgumentParser(prog="alembert").add_subparsers()
    command.register(sub)
    no_abbreviations(sub)
    parser = sub.choices[name]
    parser.exit_on_error = False
    return parser


def _flatten(cls, tree: dict, prefix: str = ""):
    """Dotted paths of ``tree`` through the config's sections (data, train, student, ...); any
    other value (a recipe, a list) is one leaf."""
    from pydantic import BaseModel

    for key, value in tree.items():
        info = getattr(cls, "model_fields", {}).get(key)
        section = info.annotation if info is not None else None
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, dict) and isinstance(section, type) and issubclass(section, BaseModel):
            yield from _flatten(section, value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _plain(value)


def _plain(value):
    """Paths as the strings a flag would give (``corpus=[Path(...)]`` too)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _model_path(model, tokenizer, stack: contextlib.ExitStack) -> str:
    """A path for ``model``: itself when it is one, else a temporary folder it is saved to."""
    if isinstance(model, str | Path):
        return str(model)
    if hasattr(model, "save_pretrained") and hasattr(model, "config"):  # a transformers model
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="alembert-model-")))
        model.save_pretrained(folder)
        _tokenizer(model, tokenizer).save_pretrained(folder)
        return str(folder)
    if hasattr(model, "save") and hasattr(model, "encode"):  # a sentence-transformers model keeps its tokenizer
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="alembert-model-")))
        model.save(str(folder))
        return str(folder)
    raise AlembertError(
        f"a model must be a path, an alias, a hub id or a loaded PreTrainedModel, got {type(model).__name__}"
    )


def _tokenizer(model, tokenizer):
    if tokenizer is not None:
        return tokenizer
    source = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
    try:
        from alembert.models.load import load_tokenizer

        return load_tokenizer(source)
    except (AlembertError, OSError, ValueError, TypeError):
        raise AlembertError(
            f"the {type(model).__name__} object has no tokenizer folder to read ({source or 'no name_or_path'}); "
            "pass tokenizer= with it, or pass the model's path"
        ) from None


def _files(out) -> dict[str, Path]:
    out = Path(out)
    return {p.name: p for p in sorted(out.iterdir()) if p.is_file()} if out.is_dir() else {}


def _result(command: str, cfg, summary: dict, metrics: dict) -> Result:
    return Result(command, dict(metrics or {}), Path(cfg.output_dir), summary, cfg, _files(cfg.output_dir))
