"""``alembert distill``: task-specific distillation with a recipe, stage after stage."""

from __future__ import annotations

import time
from contextlib import contextmanager

from alembert.config.load import dump_yaml
from alembert.config.schema import DistillConfig
from alembert.data.batching import train_loader
from alembert.data.load import resolve_task
from alembert.distill.alignment import same_tokenization, two_tokenizer_loader
from alembert.distill.card import write_model_card
from alembert.distill.data import distill_data, teacher_side
from alembert.distill.module import DistillModule, cacheable, resolve_stage_mappings
from alembert.distill.recipe import load_recipe
from alembert.distill.students import make_student
from alembert.distill.teacher_cache import build_cache
from alembert.errors import AlembertError
from alembert.evaluation.evaluate import evaluate_model
from alembert.models.load import (
    check_max_length,
    load_classifier,
    load_config,
    load_tokenizer,
    n_params,
)
from alembert.models.preprocessing import record
from alembert.training.checkpoint import latest_checkpoint
from alembert.training.logger import RunLogger
from alembert.training.loop import fit
from alembert.training.output import (
    check_output_dir,
    finish_output,
    prepare_output_dir,
    run_dir,
    save_model_atomic,
    write_json_atomic,
    write_text_atomic,
)
from alembert.training.setup import AUTOCAST, make_accelerator


@contextmanager
def builders_first(accelerator):
    """Shared on-disk caches (tokenised data, teacher outputs) are built by one process while the
    others wait, then read by them: the main process first, then each node's local main (for a
    cache folder local to each node), then the rest. Two processes never write one cache at once."""
    with accelerator.main_process_first(), accelerator.local_main_process_first():
        yield


def run_distill(cfg: DistillConfig) -> dict:
    # Every check runs before the output folder is created or written: a refused run leaves it as it was.
    task = resolve_task(cfg.data, lambda: load_config(cfg.teacher), f"teacher {cfg.teacher}")  # your own data: the teacher's labels
    recipe = load_recipe(cfg.recipe)
    check_output_dir(cfg.output_dir, cfg.overwrite, cfg.resume)  # checks only (writable, not in use): nothing is created or modified
    resume = latest_checkpoint(run_dir(cfg.output_dir, cfg.overwrite, cfg.resume)) if cfg.resume else None
    accelerator = make_accelerator(cfg.train, find_unused_parameters=recipe.find_unused_parameters)
    attn = "eager" if recipe.needs_attention else None
    tokenizer = load_tokenizer(cfg.teacher)
    teacher = load_classifier(cfg.teacher, task, attn=attn).to(accelerator.device).eval()
    teacher.requires_grad_(False)
    student, student_desc = make_student(cfg.student, teacher, tokenizer, cfg.teacher, task, attn, cfg.train.seed, cfg.cross_tokenizer)
    student_tok = load_tokenizer(cfg.student.path) if cfg.student.path else tokenizer
    check_max_length(teacher.config, cfg.data.max_length, f"{cfg.teacher} (the teacher)")
    check_max_length(student.config, cfg.data.max_length, f"{cfg.student.path or 'the student'}")
    record(student, "classification", cfg.data.max_length)
    two = not same_tokenization(tokenizer, student_tok)  # allowed only with --cross-tokenizer (checked above)
    for stage in recipe.stages:  # mappings, head counts, widths (projection: false) of every stage
        resolve_stage_mappings(stage, student, teacher)
        if two and cfg.cross_tokenizer == "cls" and stage.needs("qkv"):  # one aligned position: every relation would be 0
            raise AlembertError(f"stage {stage.name!r} has relation terms, which need every token aligned; --cross-tokenizer cls aligns only [CLS]: use --cross-tokenizer strict")
    with builders_first(accelerator):  # label values and empty data are checked here; the tokenised cache is written once
        train, dev, teacher_dev_set = distill_data(cfg.data, task, tokenizer, student_tok, two)
    out = prepare_output_dir(cfg.output_dir, cfg.overwrite, cfg.resume)  # all checks passed: create it
    teacher_dev = evaluate_model(teacher, tokenizer, task, teacher_dev_set, cfg.train.eval_batch_size) if accelerator.is_main_process else {}
    logger = RunLogger(out / "log.jsonl", enabled=accelerator.is_main_process, append=cfg.resume,
                       accelerator=accelerator, config=cfg.model_dump(mode="json"))
    if accelerator.is_main_process:
        resolved = cfg.model_copy(update={"recipe": recipe.model_dump(mode="json")})
        write_text_atomic(out / "distill_config.yaml", dump_yaml(resolved))

    start = time.time()
    stages = []
    for i, stage in enumerate(recipe.stages):
        last = i == len(recipe.stages) - 1
        if resume is not None and resume[1].stage > i:
            continue  # finished before the interruption; its result lives in the checkpoint
        train_cfg = cfg.train.model_copy(update={k: v for k, v in {"epochs": stage.epochs, "lr": stage.lr}.items() if v is not None})
        module = DistillModule(student, teacher, stage, tokenizers=(tokenizer, student_tok) if two else None, align_mode=cfg.cross_tokenizer)
        stage_train = train
        if cfg.cache_teacher and cacheable(stage):
            with builders_first(accelerator):  # one process writes the cache, the others read it
                source = teacher_side(train) if two else train
                module.__dict__["cache"] = build_cache(teacher, source, tokenizer, cfg.data.max_length, module.teacher_layers(), cfg.train.eval_batch_size,
                                                       autocast=AUTOCAST.get(cfg.train.mixed_precision))
            stage_train = train.add_column("idx", list(range(len(train))))
        if two:
            loader, sampler = two_tokenizer_loader(stage_train, tokenizer, student_tok, train_cfg.batch_size, train_cfg.seed + i, train_cfg.group_by_length)
        else:
            loader, sampler = train_loader(stage_train, tokenizer, train_cfg.batch_size, train_cfg.seed + i, train_cfg.group_by_length)
        logger.log(stage=stage.name, losses=[t.loss for t in stage.losses])

        def evaluate(module=module):
            return evaluate_model(accelerator.unwrap_model(module).student, student_tok, task, dev, cfg.train.eval_batch_size)

        def on_best(metrics, step, module=module, last=last):
            if last:
                save_model_atomic(accelerator.unwrap_model(module).student, student_tok, out)

        here = resume if resume is not None and resume[1].stage == i else None
        result = fit(module, loader, sampler, train_cfg, accelerator, evaluate, task.main_metric, on_best, logger, out, i, here)
        stages.append({"stage": stage.name, "steps": result.steps, "seconds": round(result.train_seconds, 1), "best_dev": result.best, "best_step": result.best_step})

    best = stages[-1]["best_dev"]
    main = task.main_metric
    summary = {
        "task": task.name,
        "teacher": cfg.teacher,
        "recipe": recipe.name,
        "student": student_desc,
        "main_metric": main,
        "dev": best,
        "teacher_dev": teacher_dev,
        "retention": round(100 * best.get(main, 0) / teacher_dev[main], 2) if teacher_dev.get(main) else None,
        "stages": stages,
        "train_examples": len(train),
        "dev_examples": len(dev),
        "train_seconds": round(time.time() - start, 1),
        "teacher_parameters": n_params(teacher),
        "student_parameters": n_params(student),
        "processes": accelerator.num_processes,
    }
    logger.close()
    if accelerator.is_main_process:
        write_json_atomic(out / "metrics.json", summary)
        write_model_card(out, summary, recipe)
    finish_output(out)  # an --overwrite run's files replace the previous run's only now
    return summary
