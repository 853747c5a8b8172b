"""Flags shared by the commands. Each flag writes one dotted config field, so
``--lr 3e-5`` and ``--set train.lr=3e-5`` and a YAML ``train: {lr: 3e-5}`` are the same thing."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from alembert.config.load import build_config, parse_set

FIELDS = "_config_fields"


def flag(parser: argparse.ArgumentParser, name: str, field: str, **kw) -> None:
    """Add ``name`` writing the config field ``field`` (dotted path)."""
    parser.add_argument(name, dest=field, default=None, **kw)
    fields = parser.get_default(FIELDS) or []
    parser.set_defaults(**{FIELDS: [*fields, field]})


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config; flags override its fields")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override any config field, e.g. --set train.lr=3e-5")


def add_data_flags(parser: argparse.ArgumentParser, prefix: str = "data") -> None:
    flag(parser, "--task", f"{prefix}.task", help="GLUE task (sst2, mrpc, rte, cola, stsb, qnli, qqp, mnli, wnli)")
    flag(parser, "--data-dir", f"{prefix}.data_dir", help="GLUE folder holding SST-2/ etc. (default: $ALEMBERT_DATA or ../shared/data/glue_data)")
    flag(parser, "--train-file", f"{prefix}.train_file", help="training file (.csv, .tsv, .jsonl)")
    flag(parser, "--dev-file", f"{prefix}.dev_file", help="dev file (.csv, .tsv, .jsonl)")
    flag(parser, "--text-column", f"{prefix}.text_column")
    flag(parser, "--text-pair-column", f"{prefix}.text_pair_column")
    flag(parser, "--label-column", f"{prefix}.label_column")
    flag(parser, "--max-length", f"{prefix}.max_length", type=int)
    flag(parser, "--max-train-samples", f"{prefix}.max_train_samples", type=int, help="use the first N training examples")
    flag(parser, "--max-eval-samples", f"{prefix}.max_eval_samples", type=int)


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    flag(parser, "--output", "output_dir", help="output directory")
    parser.add_argument("--overwrite", action="store_const", const=True, dest="overwrite", default=None, help="replace a model already in --output")
    parser.set_defaults(**{FIELDS: [*(parser.get_default(FIELDS) or []), "overwrite"]})
    parser.add_argument("--resume", action="store_const", const=True, dest="resume", default=None, help="continue from the newest checkpoint in --output")
    parser.set_defaults(**{FIELDS: [*(parser.get_default(FIELDS) or []), "resume"]})
    flag(parser, "--save-every", "train.save_every", type=int, help="write a checkpoint every N steps (for --resume)")
    flag(parser, "--keep-checkpoints", "train.keep_checkpoints", type=int)
    flag(parser, "--epochs", "train.epochs", type=float)
    flag(parser, "--max-steps", "train.max_steps", type=int)
    flag(parser, "--batch-size", "train.batch_size", type=int)
    flag(parser, "--grad-accum", "train.grad_accum", type=int)
    flag(parser, "--lr", "train.lr", type=float)
    flag(parser, "--warmup-ratio", "train.warmup_ratio", type=float)
    flag(parser, "--seed", "train.seed", type=int)
    flag(parser, "--eval-every", "train.eval_every", type=int)
    flag(parser, "--log-every", "train.log_every", type=int)
    flag(parser, "--threads", "train.threads", type=int)
    flag(parser, "--mixed-precision", "train.mixed_precision", choices=["no", "bf16", "fp16"])
    flag(parser, "--report-to", "train.report_to", type=lambda s: [x for x in s.split(",") if x],
         help="also send the logged scalars to Accelerate trackers: tensorboard, wandb, mlflow (comma-separated)")
    parser.add_argument("--no-group-by-length", action="store_const", const=False, dest="train.group_by_length", default=None)
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


def print_table(title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)
