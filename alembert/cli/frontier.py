"""``alembert frontier``: the best student of a teacher for a latency budget on this machine, and the whole
speed/quality frontier of its students in one run."""

import re

from alembert.cli.common import (
    add_config_flags,
    add_data_flags,
    add_train_flags,
    add_transfer_task_flag,
    comma_list,
    config_from_args,
    describe_flags,
    flag,
)
from alembert.cli.distill import add_transfer_flags
from alembert.config.schema import FrontierConfig
from alembert.errors import AlembertError

UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}


def duration(text: str) -> float:
    """``3h``, ``90m``, ``45min``, ``600s`` or ``600`` (seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", text)
    if not m:
        raise AlembertError(f"--time-budget {text!r}: expected a duration like 3h, 90m or 600s")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


def register(sub) -> None:
    p = sub.add_parser("frontier", help="plan, train and measure a teacher's students; the best for a budget")
    flag(
        p, "--teacher", "teacher", help="teacher: fine-tuned classifier, or sentence-embedding model (folder or alias)"
    )
    flag(p, "--time-budget", "time_budget", type=duration, help="training time, all candidates together: 3h, 90m, 600s")
    flag(p, "--budget-ms", "budget_ms", type=float, help="the chosen model's batch-1 latency at most this (ms)")
    flag(
        p, "--speedup", "speedup", type=float, help="the chosen model at least this many times the fp32 teacher's speed"
    )
    flag(
        p, "--min-retention", "min_retention", type=float, help="the chosen model keeps at least this %% of the teacher"
    )
    flag(
        p,
        "--candidates",
        "candidates",
        type=comma_list,
        help="train only these of the plan's candidates, e.g. layers-6",
    )
    flag(
        p,
        "--bench-threads",
        "threads",
        type=int,
        help="threads of the speed predictions and the bench (default torch's)",
    )
    p.add_argument(
        "--no-peers",
        action="store_const",
        const=False,
        dest="peers",
        default=None,
        help="leave out the peers (what a user would pick instead: all-MiniLM-L6-v2 fine-tuned, model2vec)",
    )
    p.set_defaults(_config_fields=[*p.get_default("_config_fields"), "peers"])
    flag(p, "--quantize", "quantize", choices=["auto", "int8", "none"], help="the export of every model")
    flag(p, "--corpus", "corpus.corpus", nargs="+", help="embedding tasks: training texts (.txt/.csv/.jsonl, squad)")
    add_transfer_task_flag(p, " (embedding tasks' training texts)", field="corpus.transfer_tasks")
    add_transfer_flags(p)
    add_config_flags(p)
    add_data_flags(p)
    add_train_flags(p)
    describe_flags(p, FrontierConfig)
    p.set_defaults(run=run)


def execute(args):
    """(config, summary) of the frontier ``args`` asks for: the CLI's and the Python API's one path."""
    from alembert.frontier.run import run_frontier

    cfg = config_from_args(FrontierConfig, args)
    return cfg, run_frontier(cfg)


def run(args) -> int:
    cfg, s = execute(args)
    if s.get("dry_run"):
        return 0
    print("\n".join(s["table"]))
    print(s["why"])
    print(f"wrote {cfg.output_dir}/frontier.md, frontier.json and {s['chart']}")
    return 0
