"""``alembert finetune``: fine-tune a model (usually the teacher) on a task."""

from alembert.cli.common import (
    add_config_flags,
    add_data_flags,
    add_train_flags,
    config_from_args,
    describe_flags,
    flag,
    print_table,
)
from alembert.config.schema import FinetuneConfig


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on a task and keep the best checkpoint")
    flag(p, "--model", "model", help="alias (minilm-l6, mpnet-base), local folder or hub id")
    add_config_flags(p)
    add_data_flags(p)
    add_train_flags(p)
    describe_flags(p, FinetuneConfig)
    p.set_defaults(run=run)


def execute(args):
    """(config, summary) of the run ``args`` asks for: the CLI's and the Python API's one path."""
    from alembert.tasks import task_kind

    cfg = config_from_args(FinetuneConfig, args)
    return cfg, task_kind(cfg.data.task).finetune(cfg)


def run(args) -> int:
    from accelerate import PartialState

    cfg, s = execute(args)
    if s.get("dry_run") or not PartialState().is_main_process:  # under accelerate launch only the main process reports
        return 0
    print_table(
        f"finetune {s['model']} on {s['task']} ({s['train_examples']} training examples)",
        [{"split": "dev (best)", **s["dev"], "step": s["best_step"], "train s": s["train_seconds"]}],
    )
    print(f"saved to {cfg.output_dir}")
    return 0
