"""General-purpose distillation of a sentence-embedding teacher on raw text.

``alembert distill-general`` runs this when its recipe's terms need sentence embeddings
(``embed-mse``, ``embed-cosine``, ``embed-sim``, or any recipe mixing them with
hidden-state terms). The teacher embeds every text once (cached on disk); the student, a
slice of any encoder or a new narrow shape, learns to embed the same texts the same way;
STS-B (zero-shot) is tracked at each eval step, and the best student is saved as a
sentence-transformers folder with its retrieval and STS figures in the model card.
"""

from __future__ import annotations

import time
from pathlib import Path

import datasets

from alembert.config.load import dump_yaml
from alembert.config.schema import DistillGeneralConfig
from alembert.data.batching import train_loader
from alembert.data.tokenize import tokenize_dataset
from alembert.distill.module import DistillModule, resolve_stage_mappings
from alembert.distill.recipe import Recipe
from alembert.embedding.cache import build_embedding_cache
from alembert.embedding.card import write_embedding_card
from alembert.embedding.data import load_texts
from alembert.embedding.evaluate import (
    MAIN_METRIC,
    cached_evaluation,
    encode_speed,
    evaluate_embedding,
)
from alembert.embedding.model import EmbeddingModel, load_embedding_model
from alembert.embedding.student import fit_projection, make_embedding_student
from alembert.errors import AlembertError
from alembert.models.load import n_params
from alembert.training.checkpoint import latest_checkpoint
from alembert.training.logger import RunLogger
from alembert.training.loop import fit
from alembert.training.output import (
    check_output_dir,
    finish_output,
    prepare_output_dir,
    run_dir,
    save_folder_atomic,
    write_json_atomic,
    write_text_atomic,
)
from alembert.training.setup import AUTOCAST, make_accelerator


def save_embedding_model(model: EmbeddingModel, tokenizer, out: Path) -> None:
    save_folder_atomic(out, lambda tmp: model.save(tmp, tokenizer), sum(p.numel() * p.element_size() for p in model.parameters()))


def _check_tokenizer(tokenizer, texts: list[str], name: str) -> None:
    """A student whose tokenizer maps the text to unknown tokens cannot learn it: refuse early."""
    unk = tokenizer.unk_token_id
    sample = texts[:200]
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    total = sum(len(x) for x in ids)
    bad = sum(i == unk for x in ids for i in x) if unk is not None else 0
    if total == 0 or bad > 0.5 * total:
        raise AlembertError(f"student {name}: its tokenizer encodes {bad} of {total} tokens of the first texts as unknown; "
                            "use a student whose vocabulary covers this text (or check the text's encoding)")


def run_embedding_distill(cfg: DistillGeneralConfig, recipe: Recipe) -> dict:
    stage = recipe.stages[0]
    if len(recipe.stages) != 1:
        raise AlembertError(f"recipe {recipe.name}: embedding distillation runs one stage; got {len(recipe.stages)}")
    if not cfg.data.corpus and not cfg.data.transfer_tasks:
        raise AlembertError("embedding distillation needs text: pass --corpus (files, folders, 'squad') and/or --transfer-task sst2,mrpc")
    check_output_dir(cfg.output_dir, cfg.overwrite, cfg.resume)  # checks only (writable, not in use): nothing is created or modified
    resume = latest_checkpoint(run_dir(cfg.output_dir, cfg.overwrite, cfg.resume)) if cfg.resume else None
    attn = "eager" if recipe.needs_attention else None
    teacher, teacher_tok = load_embedding_model(cfg.teacher, cfg.pooling, attn)
    teacher.eval().requires_grad_(False)
    student, student_tok, desc = make_embedding_student(cfg, teacher, teacher_tok, attn, uses_vectors=_compares_vectors(stage))
    resolve_stage_mappings(stage, student, teacher)
    max_length = cfg.data.max_length
    texts = load_texts(cfg.data.corpus, cfg.data.transfer_tasks, None, cfg.data.text_column, cfg.data.max_texts)
    _check_tokenizer(student_tok, texts, cfg.student.path or cfg.teacher)
    same_tokens = student_tok.get_vocab() == teacher_tok.get_vocab()
    use_cache = cfg.cache_teacher and stage.cacheable
    if not use_cache and not same_tokens:
        raise AlembertError("token-level terms (or --no-cache-teacher) with a student of another tokenizer need an online aligned teacher, "
                            "which embedding distillation does not support; use sentence-level terms only (embed-mse, embed-cosine, embed-sim)")
    accelerator = make_accelerator(cfg.train, find_unused_parameters=True)  # the encoder's pooler is never used
    teacher.to(accelerator.device)
    ds = tokenize_dataset(datasets.Dataset.from_dict({"text_a": texts}), student_tok, max_length)
    ds = ds.add_column("idx", list(range(len(ds))))
    out = prepare_output_dir(cfg.output_dir, cfg.overwrite, cfg.resume)  # all checks passed: create it
    logger = RunLogger(out / "log.jsonl", enabled=accelerator.is_main_process, append=cfg.resume,
                       accelerator=accelerator, config=cfg.model_dump(mode="json"))
    if accelerator.is_main_process:
        write_text_atomic(out / "distill_general_config.yaml", dump_yaml(cfg.model_copy(update={"recipe": recipe.model_dump(mode="json")})))
    start = time.time()
    module = DistillModule(student, teacher, stage)
    if use_cache:
        with accelerator.main_process_first(), accelerator.local_main_process_first():  # one process writes the cache
            module.__dict__["cache"] = build_embedding_cache(teacher, teacher_tok, texts, max_length, cfg.train.eval_batch_size,
                                                             autocast=AUTOCAST.get(cfg.train.mixed_precision))
    cache_seconds = time.time() - start
    if student.fresh_dense and cfg.student.projection_init == "lstsq" and use_cache and resume is None:
        rows = list(range(0, len(texts), max(1, len(texts) // 4096)))[:4096]  # spread over every source of the text
        fitted = fit_projection(student, student_tok, [texts[i] for i in rows], module.cache.emb[rows], max_length, cfg.train.eval_batch_size)
        logger.log(projection_init="lstsq", texts=len(rows), mean_cosine=round(fitted, 4))
    loader, sampler = train_loader(ds, student_tok, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length)
    tracked = cfg.eval_tasks[0] if cfg.eval_tasks else "stsb-zeroshot"
    main = MAIN_METRIC[tracked]

    def evaluate():
        model = accelerator.unwrap_model(module).student
        metrics = evaluate_embedding(model, student_tok, tracked, max_length, cfg.train.eval_batch_size)
        model.train()
        return metrics

    def on_best(metrics, step):
        save_embedding_model(accelerator.unwrap_model(module).student, student_tok, out)

    result = fit(module, loader, sampler, cfg.train, accelerator, evaluate, main, on_best, logger, out, 0, resume)
    summary = {"kind": "embedding", "teacher": cfg.teacher, "recipe": recipe.name, "student": desc, "texts": len(texts),
               "main_metric": main, "best_step": result.best_step, "steps": result.steps,
               "train_seconds": round(result.train_seconds, 1), "eval_seconds": round(result.eval_seconds, 1),
               "teacher_cache_seconds": round(cache_seconds, 1),
               "samples_per_second": round(result.samples / max(result.train_seconds - result.eval_seconds, 1e-9), 1),
               "teacher_parameters": n_params(teacher), "student_parameters": n_params(student)}
    if accelerator.is_main_process:
        best, best_tok = load_embedding_model(out)
        summary["dev"] = {task: evaluate_embedding(best, best_tok, task, max_length, cfg.train.eval_batch_size) for task in cfg.eval_tasks}
        summary["teacher_dev"] = {task: cached_evaluation(teacher, teacher_tok, task, max_length, cfg.train.eval_batch_size) for task in cfg.eval_tasks}
        summary["sentences_per_second"] = {"teacher": round(encode_speed(teacher, teacher_tok, max_length), 1),
                                           "student": round(encode_speed(best, best_tok, max_length), 1)}
        summary["retention"] = {task: round(100 * summary["dev"][task][MAIN_METRIC[task]] / summary["teacher_dev"][task][MAIN_METRIC[task]], 2)
                                for task in cfg.eval_tasks}
        write_json_atomic(out / "metrics.json", summary)
        write_embedding_card(out, summary, recipe)
    logger.close()
    finish_output(out)  # an --overwrite run's files replace the previous run's only now
    return summary


def _compares_vectors(stage) -> bool:
    """embed_mse / embed_cosine compare student and teacher vectors: the student needs the teacher's width."""
    return any(t.term.compares_vectors for t in stage.losses)
