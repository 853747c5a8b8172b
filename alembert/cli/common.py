"""Flags shared by the commands. Each flag writes one dotted config field, so
``--lr 3e-5`` and ``--set train.lr=3e-5`` and a YAML ``train: {lr: 3e-5}`` are the same thing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from alembert.config.load import build_config, parse_set

FIELDS = "_config_fields"


def flag(parser: argparse.ArgumentParser, name: str, field: str, **kw) -> None:
    """Add ``name`` writing the config field ``field`` (dotted path)."""
    if "choices" not in kw:
        kw.setdefault("metavar", name.lstrip("-").upper().replace("-", "_"))  # --lr LR, not --lr TRAIN.LR
    parser.add_argument(name, dest=field, default=None, **kw)
    fields = parser.get_default(FIELDS) or []
    parser.set_defaults(**{FIELDS: [*fields, field]})


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config; flags override its fields")
    parser.add_argument(
        "--set", action="append", metavar="FIELD=VALUE", help="override any config field, e.g. --set train.lr=3e-5"
    )


def comma_list(text: str) -> list[str]:
    """``--transfer-task sst2,mrpc``: names separated by commas."""
    return [x for x in text.split(",") if x]


def add_transfer_task_flag(parser: argparse.ArgumentParser, note: str = "", field: str = "data.transfer_tasks") -> None:
    flag(
        parser,
        "--transfer-task",
        field,
        type=comma_list,
        help=f"also the texts of these GLUE training sets, e.g. sst2,mrpc{note}",
    )


def label_list(text: str) -> list[str]:
    """``--labels``: class names separated by commas, or a JSON list when a name holds a comma."""
    if not text.lstrip().startswith("["):
        return [x.strip() for x in text.split(",") if x.strip()]
    try:
        names = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f'not a JSON list ({e.msg}); write e.g. \'["a, b", "c"]\'') from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str | int) for n in names):
        raise argparse.ArgumentTypeError('a JSON list of class names (strings) is needed, e.g. \'["a, b", "c"]\'')
    return [str(n) for n in names]


def add_data_flags(parser: argparse.ArgumentParser, prefix: str = "data") -> None:
    flag(
        parser,
        "--task",
        f"{prefix}.task",
        help="GLUE task (sst2, mrpc, rte, cola, stsb, qnli, qqp, mnli, wnli), or custom: "
        "your own --train-file/--dev-file labels (the default when files are given; sst2 otherwise)",
    )
    flag(
        parser,
        "--labels",
        f"{prefix}.labels",
        type=label_list,
        help="your own data: class names in id order, e.g. --labels neg,neutral,pos, or a JSON list for names "
        'holding a comma: \'["a, b", "c"]\' (default: a saved model\'s labels, else inferred from the training file)',
    )
    flag(
        parser,
        "--data-dir",
        f"{prefix}.data_dir",
        help="GLUE folder holding SST-2/ etc. (default: $ALEMBERT_DATA or ../shared/data/glue_data)",
    )
    flag(parser, "--train-file", f"{prefix}.train_file", help="training file (.csv, .tsv, .jsonl)")
    flag(parser, "--dev-file", f"{prefix}.dev_file", help="dev file (.csv, .tsv, .jsonl)")
    flag(
        parser,
        "--text-column",
        f"{prefix}.text_column",
        help="column holding the text (default: the task's, else text/sentence/sentence1)",
    )
    flag(
        parser,
        "--text-pair-column",
        f"{prefix}.text_pair_column",
        help="column holding the second text of a pair (default: text_pair/sentence2 when present)",
    )
    flag(
        parser,
        "--label-column",
        f"{prefix}.label_column",
        help="column holding the label (default: the task's, else label)",
    )
    flag(
        parser,
        "--max-length",
        f"{prefix}.max_length",
        type=int,
        help="truncate texts to this many tokens (at most the model's positions; default: the length the model "
        "was trained with, else the task's: 128, squad 384, embeddings the model's max_seq_length or 256)",
    )
    flag(
        parser, "--max-train-samples", f"{prefix}.max_train_samples", type=int, help="use the first N training examples"
    )
    flag(parser, "--max-eval-samples", f"{prefix}.max_eval_samples", type=int, help="use the first N dev examples")


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    flag(parser, "--output", "output_dir", help="output directory")
    parser.add_argument(
        "--dry-run",
        action="store_const",
        const=True,
        dest="dry_run",
        default=None,
        help="validate everything, time a few real steps, print what the run will do and cost; write nothing",
    )
    flag(
        parser,
        "--push-to-hub",
        "push_to_hub",
        metavar="REPO",
        help="push the saved model to this Hub repository after the run (checked first)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_const",
        const=True,
        dest="overwrite",
        default=None,
        help="replace the previous run in --output: its files (and only those) are replaced when the new run succeeds",
    )
    parser.set_defaults(**{FIELDS: [*(parser.get_default(FIELDS) or []), "overwrite", "dry_run"]})
    parser.add_argument(
        "--resume",
        action="store_const",
        const=True,
        dest="resume",
        default=None,
        help="continue from the newest checkpoint in --output",
    )
    parser.add_argument(
        "--resume-force",
        action="store_const",
        const=True,
        dest="resume_force",
        default=None,
        help="with --resume: continue although this command's config or data differ from the checkpoint's run "
        "(the differences are recorded in metrics.json)",
    )
    parser.set_defaults(**{FIELDS: [*(parser.get_default(FIELDS) or []), "resume", "resume_force"]})
    flag(parser, "--save-every", "train.save_every", type=int, help="write a checkpoint every N steps (for --resume)")
    flag(parser, "--keep-checkpoints", "train.keep_checkpoints", type=int, help="how many recent checkpoints to keep")
    flag(parser, "--epochs", "train.epochs", type=float, help="passes over the training set (fractions allowed)")
    flag(parser, "--max-steps", "train.max_steps", type=int, help="stop after this many optimiser steps")
    flag(parser, "--batch-size", "train.batch_size", type=int, help="global training batch (all processes together)")
    flag(parser, "--grad-accum", "train.grad_accum", type=int, help="micro-batches per optimiser step")
    flag(parser, "--lr", "train.lr", type=float, help="peak learning rate (linear warm-up and decay)")
    flag(parser, "--warmup-ratio", "train.warmup_ratio", type=float, help="fraction of the steps spent warming up")
    flag(parser, "--seed", "train.seed", type=int, help="random seed (data order, initialisation)")
    flag(
        parser,
        "--eval-every",
        "train.eval_every",
        type=int,
        help="steps between dev evaluations (default: once per epoch)",
    )
    flag(parser, "--log-every", "train.log_every", type=int, help="steps between log.jsonl records")
    flag(parser, "--threads", "train.threads", type=int, help="torch CPU threads")
    flag(
        parser, "--mixed-precision", "train.mixed_precision", choices=["no", "bf16", "fp16"], help="autocast precision"
    )
    flag(
        parser,
        "--report-to",
        "train.report_to",
        type=lambda s: [x for x in s.split(",") if x],
        help="also send the logged scalars to Accelerate trackers: tensorboard, wandb, mlflow (comma-separated)",
    )
    parser.add_argument(
        "--no-group-by-length",
        action="store_const",
        const=False,
        dest="train.group_by_length",
        default=None,
        help="shuffle batches without grouping texts of similar length",
    )
    parser.set_defaults(**{FIELDS: [*(parser.get_default(FIELDS) or []), "train.group_by_length"]})


def config_from_args(cls, args: argparse.Namespace):
    """Flags, then ``--set`` items (which may index into the named recipe), over the YAML."""
    overrides = {f: getattr(args, f) for f in getattr(args, FIELDS, [])}
    overrides.update(parse_set(args.set))
    sections = {"recipe": _recipe_tree(cls)} if "recipe" in cls.model_fields else None
    return build_config(cls, args.config, overrides, sections)


def _recipe_tree(cls):
    """A recipe name (or the command's default recipe) as the editable tree of that recipe."""

    def resolve(name):
        from alembert.distill.recipe import load_recipe

        return load_recipe(name if name is not None else cls.model_fields["recipe"].default).model_dump(mode="json")

    return resolve


def describe_flags(parser: argparse.ArgumentParser, cls) -> None:
    """Give every config flag of ``parser`` its default from the config class ``cls`` in ``--help``
    (argparse sees only None: a flag not given leaves the YAML's or the config's value), and the
    field's description where the flag has no help of its own."""
    for action in parser._actions:
        if (
            action.dest not in (parser.get_default(FIELDS) or []) or action.nargs == 0
        ):  # on/off switches say it themselves
            continue
        node, info = cls, None
        for part in action.dest.split("."):
            fields = getattr(node, "model_fields", {})
            info = fields.get(part)
            if info is None:
                break
            node = info.annotation
        if info is None:
            continue
        text = action.help or info.description or ""
        if info.is_required():  # no default to show: the flag (or its YAML field) must be given
            if action.help is not argparse.SUPPRESS and "required" not in text:
                action.help = f"{text} (required)".strip()
            continue
        default = info.get_default(call_default_factory=True)
        shown = "none" if default is None or default == [] else default
        if action.help is not argparse.SUPPRESS and "default" not in text:
            action.help = f"{text} (default: {shown})".strip() if text else f"default: {shown}"


def format_cell(column: str, value) -> str:
    """A number as a reader wants it: seconds as ``379 s``, percentages with one decimal
    (``96.2``), metrics in [0, 1] with four (``0.8452``), other floats with three significant
    figures; everything else as it is."""
    if not isinstance(value, float):
        return str(value)
    if value != value:  # nan
        return "n/a"
    name = column.lower()
    if name.endswith((" s", "seconds", "(s)")):
        return f"{value:.0f} s"
    if "%" in name or "retention" in name:
        return f"{value:.1f}"
    if abs(value) <= 1:
        return f"{value:.4f}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def rich_table(title: str, rows: list[dict[str, str]], no_wrap: tuple[str, ...] = ("model",)) -> Table:
    """A compact rich table: no vertical rules, two spaces between columns; the ``no_wrap``
    columns (model names) are never cut, the others fold rather than truncate a value."""
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    for col in rows[0]:
        table.add_column(col, no_wrap=col in no_wrap, overflow="fold", min_width=min(len(col), 4))
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    return table


def print_table(title: str, rows: list[dict], terminal_rows: list[dict] | None = None) -> None:
    """A rich table on a terminal; plain markdown otherwise (rich cuts columns to a few
    characters when the output is a pipe or a file). ``terminal_rows``: fewer, narrower
    columns for the terminal (the markdown and JSON outputs keep all of ``rows``)."""
    cells = [{k: format_cell(k, v) for k, v in row.items()} for row in rows]
    if not sys.stdout.isatty():
        print(f"{title}\n")
        print("| " + " | ".join(map(str, rows[0])) + " |")
        print("|" + "---|" * len(rows[0]))
        for row in cells:
            print("| " + " | ".join(row.values()) + " |")
        return
    shown = [{k: format_cell(k, v) for k, v in row.items()} for row in terminal_rows] if terminal_rows else cells
    Console().print(rich_table(title, shown))


def no_abbreviations(sub) -> None:
    """Every command takes its flags whole: with argparse's default, a prefix (``--max-train``) silently
    stands for whichever flag it begins, and a flag added later turns yesterday's command into an error
    or, worse, into another flag."""
    for parser in sub.choices.values():
        parser.allow_abbrev = False
