"""``alembert distill``: distil a fine-tuned teacher into a smaller student on a task."""

from pathlib import Path

from alembert.cli.common import (
    add_config_flags,
    add_data_flags,
    add_train_flags,
    config_from_args,
    describe_flags,
    flag,
    print_table,
)
from alembert.config.schema import DistillConfig
from alembert.distill.recipe_files import recipe_names
from alembert.errors import AlembertError
from alembert.export.teacher_labels import MIN_ROWS


def register(sub) -> None:
    p = sub.add_parser("distill", help="task-specific distillation with a named or YAML recipe")
    flag(p, "--teacher", "teacher", help="fine-tuned teacher: folder, alias or hub id")
    flag(p, "--recipe", "recipe", help=f"a packaged recipe ({', '.join(recipe_names())}) or a YAML file")
    flag(p, "--student", "student.path", help="existing student checkpoint (e.g. from distill-general)")
    flag(
        p,
        "--student-layers",
        "student.layers",
        type=layer_list,
        help="teacher layers to keep, 0-based, e.g. 0,2,4 (default every other)",
    )
    p.add_argument(
        "--student-config",
        dest="student_config",
        help="random-init shape, e.g. num_layers=4,hidden_size=312,intermediate_size=1200,num_heads=12",
    )
    add_prune_flags(p)
    p.add_argument(
        "--no-cache-teacher",
        action="store_const",
        const=False,
        dest="cache_teacher",
        default=None,
        help="run the teacher every step instead of caching its logits/[CLS] states once",
    )
    p.add_argument(
        "--no-fast-teacher",
        action="store_const",
        const=False,
        dest="fast_teacher",
        default=None,
        help=f"label the cached rows with the PyTorch teacher, not its fastest export that keeps its dev metric "
        f"(used from {MIN_ROWS:,} rows on)",
    )
    p.set_defaults(_config_fields=[*(p.get_default("_config_fields") or []), "cache_teacher", "fast_teacher"])
    flag(
        p,
        "--cross-tokenizer",
        "cross_tokenizer",
        choices=["off", "strict", "cls"],
        help="teacher and student with different tokenizers: strict aligns every token, cls only [CLS]",
    )
    add_transfer_flags(p)
    add_config_flags(p)
    add_data_flags(p)
    add_train_flags(p)
    describe_flags(p, DistillConfig)
    p.set_defaults(run=run)


def add_transfer_flags(p) -> None:
    """Where the rows the teacher labels come from, beside the labelled set (``data.transfer*``)."""
    flag(
        p,
        "--transfer",
        "data.transfer",
        help="unlabelled text the teacher labels: a .txt/.csv/.tsv/.jsonl file (FILE:COLUMN for one column), "
        "train-rest, or none (default: a labelled set under --transfer-fill rows is filled up to it from the "
        "rows --max-train-samples left out and TinyBERT augmentation)",
    )
    flag(p, "--transfer-size", "data.transfer_size", type=int, help="build N transfer rows, whatever the set's size")
    flag(
        p,
        "--transfer-fill",
        "data.transfer_fill",
        type=int,
        help="fill a labelled set under N rows up to N with transfer text (default 20000)",
    )
    flag(p, "--augment-mlm", "data.augment_mlm", help="masked-LM model for augmentation's word replacements")
    flag(p, "--max-transfer-samples", "data.max_transfer_samples", type=int, help="use the first N transfer texts")


def layer_list(text: str) -> list[int]:
    from alembert.models.student import parse_layers  # torch: only when the flag is parsed

    return parse_layers(text)


def student_builder_sets(args) -> list[str]:
    """``--student NAME[:KEY=VALUE,...]`` naming a student builder (``static:dim=256``) rather than a
    folder: ``--set student.builder=NAME`` and ``--set student.KEY=VALUE`` each, and no ``student.path``.
    A folder or alias of that name is still a folder (it is looked for first)."""
    from alembert.models.packaged import ALIASES
    from alembert.students import BUILDERS

    value = getattr(args, "student.path", None)
    if not value:
        return []
    name, _, options = value.partition(":")
    if name not in BUILDERS or name in ALIASES or Path(value).exists():
        return []
    items = [kv.strip() for kv in options.split(",") if kv.strip()]
    if any("=" not in kv for kv in items):
        raise AlembertError(f"--student {value!r}: expected {name}:KEY=VALUE,... like static:dim=256")
    setattr(args, "student.path", None)
    return [f"student.builder={name}", *(f"student.{kv}" for kv in items)]


def add_prune_flags(p) -> None:
    p.add_argument(
        "--student-prune",
        dest="student_prune",
        help="cut the student from the teacher's weights (or --student's): heads=K (with the hidden width "
        "K x head width), ffn=N, layers=0,2,4,...; e.g. heads=6,ffn=1536,layers=0,2,4,6,8,10",
    )
    flag(
        p, "--prune-batches", "student.prune.batches", type=int, help="training batches --student-prune scores units on"
    )
    flag(
        p,
        "--prune-rounds",
        "student.prune.rounds",
        type=int,
        help="iterative pruning: reach --student-prune's cut in N rounds of cut-then-distil within the run",
    )


def prune_sets(text: str | None) -> list[str]:
    """``--student-prune heads=6,ffn=1536,layers=0,2,4`` as ``--set`` items: ``student.builder=prune``
    and ``student.prune.KEY=VALUE``; a bare number after ``layers=`` continues its list."""
    if not text:
        return []
    fields: dict[str, list[str]] = {}
    last = None
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if "=" in item:
            last, _, value = item.partition("=")
            last = last.strip()
            fields[last] = [value.strip()] if value.strip() else []
        elif last == "layers":
            fields[last].append(item)
        else:
            raise AlembertError(
                f"--student-prune {text!r}: expected KEY=VALUE pairs like heads=6,ffn=1536,layers=0,2,4"
            )
    sets = ["student.builder=prune"]
    for key, values in fields.items():
        if key == "layers":
            sets.append(f"student.prune.layers=[{','.join(values)}]")
        else:
            sets.append(f"student.prune.{key}={','.join(values)}")
    return sets


def student_config_sets(text: str | None) -> list[str]:
    if not text:
        return []
    items = [kv.strip() for kv in text.split(",") if kv.strip()]
    if any("=" not in kv for kv in items):
        raise AlembertError(f"--student-config {text!r}: expected KEY=VALUE pairs like num_layers=4,hidden_size=312")
    return [f"student.{kv}" for kv in items]


def execute(args):
    """(config, summary) of the run ``args`` asks for: the CLI's and the Python API's one path."""
    from alembert.tasks import task_kind

    args.set = [
        *student_builder_sets(args),
        *student_config_sets(args.student_config),
        *prune_sets(args.student_prune),
        *(args.set or []),
    ]
    cfg = config_from_args(DistillConfig, args)
    return cfg, task_kind(cfg.data.task).distill(cfg)


def run(args) -> int:
    from accelerate import PartialState

    cfg, s = execute(args)
    if s.get("dry_run") or not PartialState().is_main_process:  # under accelerate launch only the main process reports
        return 0
    main = s["main_metric"]
    print_table(
        f"distill {s['task']} with {s['recipe']}",
        [
            {
                "model": "teacher",
                "params": f"{s['teacher_parameters']:,}",
                f"dev {main}": s["teacher_dev"].get(main, float("nan")),
                "retention %": 100.0,
            },
            {
                "model": "student",
                "params": f"{s['parameters']:,}",
                f"dev {main}": s["dev"].get(main, float("nan")),
                "retention %": s["retention"],
            },
        ],
    )
    print(f"saved to {cfg.output_dir} ({s['train_seconds']} s)")
    return 0
