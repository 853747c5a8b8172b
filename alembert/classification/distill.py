"""``alembert distill`` of a classifier: task-specific distillation with a recipe, stage after stage."""

from __future__ import annotations

import sys

from alembert.classification.distill_data import distill_data, teacher_side
from alembert.classification.evaluate import evaluate_model
from alembert.config.schema import DistillConfig
from alembert.data.batching import eval_batches, train_loader
from alembert.data.load import resolve_task
from alembert.data.two_tokenizers import same_tokenization, two_tokenizer_loader
from alembert.distill.card import write_model_card
from alembert.distill.module import DistillModule, cacheable, resolve_stage_mappings
from alembert.distill.recipe import load_recipe
from alembert.distill.rounds import Rounds, fit_stages, plan_stages
from alembert.distill.teacher_cache import TeacherCache, build_cache, cache_key
from alembert.errors import AlembertError
from alembert.files import save_model_atomic
from alembert.models.load import (
    check_max_length,
    load_classifier,
    load_config,
    load_tokenizer,
    n_params,
)
from alembert.models.packaged import cache_dir
from alembert.models.preprocessing import record
from alembert.students import BuiltStudent, StudentData, build_student, student_builder, student_tokenizer
from alembert.training.loop import Callbacks, FitSpec
from alembert.training.plan import PlannedStage, time_forward
from alembert.training.runner import Run, card_view
from alembert.training.setup import AUTOCAST


def run_distill(cfg: DistillConfig, kind, callbacks: Callbacks | None = None) -> dict:
    """Distil ``cfg.teacher`` into a student, stage after stage of the recipe; the
    ``metrics.json`` dict (or, with ``cfg.dry_run``, the plan). ``kind``: the task kind (its model card)."""
    # Every check runs before the output folder is created or written: a refused run leaves it as it was.
    task = resolve_task(
        cfg.data, lambda: load_config(cfg.teacher), f"teacher {cfg.teacher}"
    )  # your own data: the teacher's labels
    recipe = load_recipe(cfg.recipe)
    run = Run("distill", cfg, callbacks)
    accelerator = run.make_accelerator(cfg.train, recipe)
    attn = "eager" if recipe.needs_attention else None
    tokenizer = load_tokenizer(cfg.teacher)
    teacher = load_classifier(cfg.teacher, task, attn=attn).to(accelerator.device).eval()
    teacher.requires_grad_(False)
    builder = student_builder(cfg.student)  # an unknown student.builder is refused before anything loads
    # a recipe that reads no teacher output (ce: the student alone) trains with any vocabulary: each side
    # tokenises for itself (the teacher still scores its own dev set for the retention figure)
    reads_teacher = any(stage.needs_teacher for stage in recipe.stages)
    cross = cfg.cross_tokenizer if reads_teacher or cfg.cross_tokenizer != "off" else "strict"
    cfg = cfg.model_copy(update={"cross_tokenizer": cross})
    student_tok = student_tokenizer(cfg.student, tokenizer, cfg.teacher, cfg.cross_tokenizer)
    check_max_length(teacher.config, cfg.data.max_length, f"{cfg.teacher} (the teacher)")
    two = not same_tokenization(tokenizer, student_tok)  # allowed only with --cross-tokenizer (checked above)

    def make_student(data: StudentData | None = None) -> BuiltStudent:
        """The student with the teacher's head, checked against the data's length and every stage."""
        made = build_student(
            cfg.student,
            teacher,
            data,
            teacher_name=cfg.teacher,
            seed=cfg.train.seed,
            rounds=True,  # distill/rounds.py cuts the later rounds
            load=lambda path: load_classifier(path, task, attn=attn),
        )
        check_max_length(made.model.config, cfg.data.max_length, f"{cfg.student.path or 'the student'}")
        record(made.model, "classification", cfg.data.max_length)
        for stage in recipe.stages:  # mappings, head counts, widths (projection: false) of every stage
            resolve_stage_mappings(stage, made.model, teacher)
            if (
                two and cfg.cross_tokenizer == "cls" and stage.needs("qkv")
            ):  # one aligned position: every relation would be 0
                raise AlembertError(
                    f"stage {stage.name!r} has relation terms, which need every token aligned; "
                    "--cross-tokenizer cls aligns only [CLS]: use --cross-tokenizer strict"
                )
        return made

    made = None if builder.needs_data else make_student()  # a student of no data is checked before any data loads
    data_cfg = cfg.data
    if not reads_teacher and data_cfg.transfer is None:  # the student alone: nothing would label transfer text
        data_cfg = data_cfg.model_copy(update={"transfer": "none"})
    with run.cache_guard():  # label values and empty data are checked here; the tokenised cache is written once
        train, dev, teacher_dev_set, transfer = distill_data(
            data_cfg, task, tokenizer, student_tok, two, cfg.teacher, cfg.train.seed
        )
    if data_cfg is not cfg.data:
        transfer.why = f"recipe {recipe.name} reads no teacher output"
    made_data = None
    if made is None:  # the builder reads real training batches, in the student's tokenizer
        loader = train_loader(train, student_tok, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length)[0]
        made_data = StudentData(loader, student_tok)
        made = make_student(made_data)
    student, student_desc = made.model, made.description
    autocast = AUTOCAST.get(cfg.train.mixed_precision)
    bs = cfg.train.eval_batch_size

    def teacher_eval():
        return evaluate_model(teacher, tokenizer, task, teacher_dev_set, bs)

    # the recipe's stages, the last one in rounds of cut-then-distil with --prune-rounds (distill/rounds.py)
    rounds = Rounds(cfg.student, recipe.stages, run, made_data, cfg.train.seed, cfg.student.path or cfg.teacher)

    if made_data is not None:  # enough steps for every round, checked before the output folder exists
        rounds.check(recipe.stages[-1].train_config(cfg.train), len(made_data.batches))
    if run.is_main and not run.dry_run and cfg.data.transfer != "none":  # every check passed; a dry run's plan says it
        print(transfer.line(), file=sys.stderr, flush=True)

    labels_by: dict[str, dict] = {}  # stage -> who computed its cached teacher outputs (export/teacher_labels.py)

    def stage_parts(rs, student):
        """(module, loader, sampler, spec, cache plan) of run stage ``rs``; the cache built unless dry."""
        i, stage = rs.data_index, rs.stage
        train_cfg = stage.train_config(cfg.train)
        module = DistillModule(
            student,
            teacher,
            stage,
            tokenizers=(tokenizer, student_tok) if two else None,
            align_mode=cfg.cross_tokenizer,
        )
        stage_train, cache = train, None
        if cfg.cache_teacher and cacheable(stage):
            source = teacher_side(train) if two else train
            layers = module.teacher_layers()
            shape = (len(source), teacher.config.num_labels, layers, teacher.config.hidden_size)
            cache = {"examples": len(source), "bytes": TeacherCache.nbytes(*shape)}
            if run.dry_run:
                labeller = kind.teacher_labeller(cfg, teacher, source, tokenizer, layers, True, autocast)
                runner = labeller.model or teacher
                key = cache_key(teacher, source, tokenizer, cfg.data.max_length, layers, autocast, labeller.source)
                cache["ready"] = (cache_dir() / "teacher" / key / "meta.json").is_file()
                cache["probe"] = lambda: time_forward(
                    runner, eval_batches(source, tokenizer, bs), len(source), hidden=bool(layers)
                )
                module.__dict__["cache"] = TeacherCache.zeros(*shape)
            else:
                with run.cache_guard(), run.timed("teacher_cache"):  # one process writes the cache, the others read it
                    labeller = kind.teacher_labeller(cfg, teacher, source, tokenizer, layers, autocast=autocast)
                    if run.is_main:
                        print(labeller.line(), file=sys.stderr, flush=True)
                    module.__dict__["cache"] = build_cache(
                        teacher,
                        source,
                        tokenizer,
                        cfg.data.max_length,
                        layers,
                        bs,
                        autocast=autocast,
                        labeller=labeller,
                    )
            labels_by[rs.name] = labeller.as_dict()
            stage_train = train.add_column("idx", list(range(len(train))))
        if two:
            loader, sampler = two_tokenizer_loader(
                stage_train, tokenizer, student_tok, train_cfg.batch_size, train_cfg.seed + i, train_cfg.group_by_length
            )
        else:
            loader, sampler = train_loader(
                stage_train, tokenizer, train_cfg.batch_size, train_cfg.seed + i, train_cfg.group_by_length
            )

        def evaluate():
            return evaluate_model(accelerator.unwrap_model(module).student, student_tok, task, dev, bs)

        spec = FitSpec(train_cfg, task.main_metric, evaluate, stage=rs.index, resume=run.stage_resume(rs.index))
        return module, loader, sampler, spec, cache

    if run.dry_run:
        planned = []
        for rs, (module, loader, sampler, spec, cache) in plan_stages(rounds, student, stage_parts):
            planned.append(
                PlannedStage(
                    rs.name,
                    module,
                    loader,
                    sampler,
                    spec,
                    "cached" if cache else "online",
                    cache_ready=bool(cache and cache["ready"]),
                    cache_bytes=cache["bytes"] if cache else 0,
                    cache_examples=cache["examples"] if cache else 0,
                    cache_probe=cache and cache["probe"],
                )
            )
        into = rounds.description or student_desc
        return run.plan(
            what=f"distil {cfg.teacher} into {into} on {task.name} with recipe {recipe.name}",
            examples={
                "train_examples": len(train),
                "dev_examples": len(dev),
                "transfer": transfer.as_dict(),
                "teacher_labels": labels_by,
            },
            stages=planned,
            evaluations={"teacher": teacher_eval, "student": planned[-1].spec.evaluate},
        )
    out = run.open(
        "distill_config.yaml", cfg.model_copy(update={"recipe": recipe.model_dump(mode="json")})
    )  # all checks passed
    teacher_dev = teacher_eval() if run.is_main else {}

    student = fit_stages(run, rounds, student, stage_parts, lambda model: save_model_atomic(model, student_tok, out))

    summary = run.summary(
        kind="classification",
        task=task.name,
        model=rounds.description or student_desc,
        teacher=cfg.teacher,
        recipe=recipe.name,
        main_metric=task.main_metric,
        teacher_dev=teacher_dev,
        train_examples=len(train),
        dev_examples=len(dev),
        parameters=n_params(student),
        teacher_parameters=n_params(teacher),
        details={
            "attention": teacher.config._attn_implementation,
            "max_length": cfg.data.max_length,
            "transfer": transfer.as_dict(),
            "teacher_labels": labels_by,
        },
    )
    return run.finish(summary, card=lambda out, s: write_model_card(out, card_view(s), recipe, kind))
