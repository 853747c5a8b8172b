"""``alembert distill-general``: task-agnostic distillation on raw text, optionally followed by the task stage."""

from pathlib import Path

from alembert.cli.common import (
    add_config_flags,
    add_train_flags,
    add_transfer_task_flag,
    comma_list,
    config_from_args,
    describe_flags,
    flag,
    print_table,
)
from alembert.cli.distill import add_prune_flags, layer_list, prune_sets, student_builder_sets, student_config_sets
from alembert.config.schema import DistillGeneralConfig
from alembert.distill.recipe_files import recipe_names


def register(sub) -> None:
    p = sub.add_parser("distill-general", help="general distillation on raw text (DistilBERT / TinyBERT first stage)")
    flag(p, "--teacher", "teacher", help="pretrained teacher: folder, alias or hub id")
    flag(
        p,
        "--recipe",
        "recipe",
        help=f"a packaged recipe ({', '.join(recipe_names())}; default tinybert-general) or a YAML file",
    )
    flag(
        p,
        "--corpus",
        "data.corpus",
        nargs="+",
        help=".txt files or folders; squad: the SQuAD training articles' paragraphs (and questions, embedding recipes)",
    )
    flag(
        p,
        "--max-length",
        "data.max_length",
        type=int,
        help="tokens per sequence (default: embedding recipes the teacher's max_seq_length or 256, else 128)",
    )
    flag(p, "--max-sequences", "data.max_sequences", type=int, help="use the first N packed sequences")
    flag(p, "--heldout", "data.heldout", type=int, help="packed sequences held out to track the loss")
    flag(
        p,
        "--student",
        "student.path",
        help="existing student checkpoint, or a student builder with its fields: static (or static:dim=256) for a "
        "static student of embedding recipes",
    )
    flag(
        p,
        "--student-layers",
        "student.layers",
        type=layer_list,
        help="teacher layers to keep, 0-based (default every other)",
    )
    p.add_argument(
        "--student-config", dest="student_config", help="random-init shape, e.g. num_layers=4,hidden_size=312"
    )
    add_prune_flags(p)
    add_transfer_task_flag(p, " (token-level recipes: one row each, packed)")
    flag(p, "--max-texts", "data.max_texts", type=int, help="embedding recipes: use the first N distinct texts")
    flag(p, "--text-column", "data.text_column", help="embedding recipes: text column of CSV/TSV/JSONL sources")
    flag(
        p,
        "--queries",
        "data.queries",
        nargs="+",
        metavar="SOURCE",
        help="ranking recipes (embed-rank): query texts, files as for --corpus, or squad (its training questions)",
    )
    flag(
        p,
        "--pseudo-queries",
        "data.pseudo_queries",
        type=int,
        help="ranking recipes: N inverse-cloze queries (a sentence of a passage stands for a query), seeded",
    )
    flag(
        p,
        "--pooling",
        "pooling",
        choices=["mean", "cls", "max"],
        help="embedding recipes: pooling of a plain encoder teacher (no modules.json)",
    )
    flag(
        p,
        "--eval-tasks",
        "eval_tasks",
        type=comma_list,
        help="embedding recipes: stsb-zeroshot,squad-retrieval (default both; the first tracked at every eval)",
    )
    p.add_argument(
        "--no-projection",
        action="store_const",
        const=False,
        dest="student.projection",
        default=None,
        help="embedding recipes: no Dense layer to the teacher's width for a narrower student",
    )
    p.add_argument(
        "--no-cache-teacher",
        action="store_const",
        const=False,
        dest="cache_teacher",
        default=None,
        help="embedding recipes: run the teacher every step instead of caching its embeddings",
    )
    p.set_defaults(_config_fields=[*(p.get_default("_config_fields") or []), "student.projection", "cache_teacher"])
    p.add_argument("--then-task", help="run task distillation next (TinyBERT's two stages): a GLUE task")
    p.add_argument("--task-teacher", help="the fine-tuned teacher for --then-task")
    p.add_argument("--task-recipe", default="kd", help="recipe of the task stage (default kd)")
    p.add_argument(
        "--task-epochs", type=float, default=None, help="epochs of the task stage (default: the train section's)"
    )
    add_config_flags(p)
    add_train_flags(p)
    describe_flags(p, DistillGeneralConfig)
    p.set_defaults(run=run)


def run_general(cfg: DistillGeneralConfig, callbacks=None) -> dict:
    """The run of ``cfg``'s recipe: on sentence embeddings (a sentence-embedding teacher, its own
    data and outputs: :mod:`alembert.embedding.run`) or on token-level outputs of raw text
    (:mod:`alembert.distill.general`)."""
    from alembert.distill.recipe import load_recipe
    from alembert.tasks.base import KINDS, with_max_length

    recipe = load_recipe(cfg.recipe)
    if recipe.stages[0].needs("embeddings"):
        from alembert.embedding.run import run_embedding_distill

        # the teacher's own length (its max_seq_length, else 256), as the embedding kind resolves it everywhere
        return run_embedding_distill(KINDS["embedding"]().resolve_max_length(cfg, cfg.teacher), recipe, callbacks)
    from alembert.distill.general import PACKED_LENGTH, run_distill_general

    if cfg.data.max_length is None:  # no task kind: packed raw text, BERT's pre-training length
        cfg = with_max_length(cfg, PACKED_LENGTH)
    return run_distill_general(cfg, recipe, callbacks)


def execute(args):
    """(config, summary, task stage) of the run ``args`` asks for, the task stage being
    (its config, its summary) after --then-task, else None: the CLI's and the Python API's one path."""
    from alembert.config.schema import DistillConfig
    from alembert.errors import AlembertError
    from alembert.tasks import task_kind

    if args.then_task and not args.task_teacher:
        raise AlembertError("--then-task needs --task-teacher: the teacher fine-tuned on that task")
    args.set = [
        *student_builder_sets(args),
        *student_config_sets(args.student_config),
        *prune_sets(args.student_prune),
        *(args.set or []),
    ]
    cfg = config_from_args(DistillGeneralConfig, args)
    push = cfg.push_to_hub if args.then_task else None
    if push:  # the task-stage model is the one pushed; the target is still checked before any training
        from alembert.training.hub import check_push_target

        check_push_target(push)
        cfg = cfg.model_copy(update={"push_to_hub": None})
    s = run_general(cfg)
    if s.get("dry_run") or not args.then_task or s.get("kind") == "embedding":
        return cfg, s, None
    task_cfg = DistillConfig(
        teacher=args.task_teacher,
        recipe=args.task_recipe,
        student={"path": str(cfg.output_dir)},
        output_dir=Path(cfg.output_dir) / f"task-{args.then_task}",
        overwrite=cfg.overwrite,
        data={"task": args.then_task},
        train=cfg.train.model_copy(update={"epochs": args.task_epochs or 3.0, "lr": 5e-5, "eval_every": None}),
        push_to_hub=push,
    )
    return cfg, s, (task_cfg, task_kind(args.then_task).distill(task_cfg))


def run(args) -> int:
    cfg, s, task = execute(args)
    if s.get("dry_run"):
        return 0
    if s.get("kind") == "embedding":
        d = s["details"]
        rows = [
            {
                "model": who,
                **{f"{t} {k}": v for t, m in s[key].items() for k, v in m.items() if k in ("spearman", "mrr@10")},
            }
            for who, key in (("teacher", "teacher_dev"), ("student", "dev"))
        ]
        print_table(f"distill-general with {s['recipe']} ({s['train_examples']} texts)", rows)
        print(
            f"saved to {cfg.output_dir} ({s['train_seconds']} s training, {d['teacher_cache_seconds']} s teacher cache)"
        )
        return 0
    print_table(
        f"distill-general with {s['recipe']}",
        [{"sequences": s["train_examples"], **s["dev"], "step": s["best_step"], "train s": s["train_seconds"]}],
    )
    print(f"saved to {cfg.output_dir}")
    if task is not None:
        task_cfg, t = task
        print(
            f"task stage: {t['task']} {t['main_metric']} {t['dev'].get(t['main_metric'])} "
            f"(retention {t['retention']}%), saved to {task_cfg.output_dir}"
        )
    return 0
