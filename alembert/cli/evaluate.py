"""``alembert evaluate MODEL --task TASK``: a saved model's (or ONNX export's) official dev metrics."""

import json
import sys
from pathlib import Path

from alembert.cli.common import (
    add_config_flags,
    add_data_flags,
    config_from_args,
    describe_flags,
    flag,
    print_table,
)
from alembert.config.schema import EvaluateConfig
from alembert.errors import AlembertError


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="official dev metrics of a saved model")
    p.add_argument("model", help="saved model folder, alias or hub id")
    add_config_flags(p)
    add_data_flags(p)
    flag(p, "--output", "output_dir", help="folder for eval_results.json (default: the model folder when writable)")
    flag(p, "--batch-size", "batch_size", type=int)
    p.add_argument(
        "--pooling", choices=["mean", "cls", "max"], help="embedding tasks: pooling of an encoder without modules.json"
    )
    p.add_argument(
        "--documents-by",
        metavar="MODEL",
        help="squad-retrieval: the model that embeds the paragraphs (asymmetric search: the teacher embeds the "
        "corpus once, the student only the queries); it must share the student's space",
    )
    describe_flags(p, EvaluateConfig)
    p.set_defaults(run=run)


def execute(args) -> dict:
    """The metrics of the evaluation ``args`` asks for, and where they were written: the CLI's and
    the Python API's one path. Keys: config, task, examples, title (of the table), metrics,
    eval_results (the path written, or None), note (why it was not, or None)."""
    from alembert.files import check_writable, write_json_atomic
    from alembert.models.resolve import resolve_model
    from alembert.tasks import kinds, task_kind

    args.set = [*(args.set or []), f"model={args.model}"]
    cfg = config_from_args(EvaluateConfig, args)
    if cfg.output_dir is not None:  # an --output that cannot be written is refused before any compute
        if cfg.output_dir.exists() and not cfg.output_dir.is_dir():
            raise AlembertError(f"--output {cfg.output_dir} is a file; pass a folder for eval_results.json")
        check_writable(cfg.output_dir)
    kind = task_kind(cfg.data.task)
    own = {name for k in kinds() for name in k.evaluate_flags}  # a kind's own flags, given to another: refused
    for name in sorted(own - set(kind.evaluate_flags)):
        if getattr(args, name, None):
            raise AlembertError(f"--{name.replace('_', '-')} is not an option of {kind.description} tasks")
    r = kind.evaluate(cfg, args)
    name, n, metrics = r.task, r.examples, r.metrics
    out = Path(cfg.output_dir) if cfg.output_dir else resolve_model(cfg.model)
    written, note = None, None
    try:
        out.mkdir(parents=True, exist_ok=True)
        results = {"task": name, "examples": n, "max_length": r.max_length, **metrics}
        write_json_atomic(out / "eval_results.json", results)
        written = out / "eval_results.json"
    except (OSError, AlembertError) as exc:
        if cfg.output_dir is not None:  # asked for: a failure is an error, never silence
            raise AlembertError(
                f"--output {out}: could not write eval_results.json ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        note = f"note: the model folder {out} is not writable; eval_results.json not saved (pass --output DIR)"
    return {
        "config": cfg,
        "task": name,
        "examples": n,
        "title": r.title,
        "metrics": metrics,
        "eval_results": written,
        "note": note,
    }


def run(args) -> int:
    r = execute(args)
    print_table(r["title"], [r["metrics"]])
    if r["note"]:
        print(r["note"], file=sys.stderr)
    print(json.dumps(r["metrics"]))
    return 0
