"""General-purpose distillation of a sentence-embedding teacher on raw text.

``alembert distill-general`` runs this when its recipe's terms need sentence embeddings
(``embed-mse``, ``embed-cosine``, ``embed-sim``, or any recipe mixing them with
hidden-state terms). The teacher embeds every text once (cached on disk); the student, a
slice of any encoder or a new narrow shape, learns to embed the same texts the same way;
STS-B (zero-shot) is tracked at each eval step, and the best student is saved as a
sentence-transformers folder with its retrieval and STS figures in the model card.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np

from alembert.config.schema import DistillGeneralConfig
from alembert.data.batching import train_loader
from alembert.data.tokenize import tokenize_dataset
from alembert.distill.module import DistillModule, resolve_stage_mappings
from alembert.distill.recipe import Recipe
from alembert.distill.rounds import one_round
from alembert.embedding.cache import build_embedding_cache, embedding_cache_folder, encode
from alembert.embedding.card import write_embedding_card
from alembert.embedding.data import load_texts
from alembert.embedding.evaluate import (
    MAIN_METRIC,
    cached_evaluation,
    encode_speed,
    evaluate_embedding,
)
from alembert.embedding.queries import group_loader, query_set
from alembert.embedding.student import (
    check_embedding_student,
    compares_vectors,
    embedding_student_tokenizer,
    fit_projection_on,
    make_embedding_student,
)
from alembert.errors import AlembertError
from alembert.files import save_folder_atomic
from alembert.models.load import n_params
from alembert.models.sentence import EmbeddingModel, load_embedding_model
from alembert.students import StudentData, student_builder
from alembert.training.loop import Callbacks, FitSpec
from alembert.training.plan import PlannedStage
from alembert.training.runner import Run, card_view
from alembert.training.setup import AUTOCAST


def save_embedding_model(model: EmbeddingModel, tokenizer, out: Path) -> None:
    save_folder_atomic(
        out, lambda tmp: model.save(tmp, tokenizer), sum(p.numel() * p.element_size() for p in model.parameters())
    )


def _check_tokenizer(tokenizer, texts: list[str], name: str) -> None:
    """A student whose tokenizer maps the text to unknown tokens cannot learn it: refuse early."""
    unk = tokenizer.unk_token_id
    sample = texts[:200]
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    total = sum(len(x) for x in ids)
    bad = sum(i == unk for x in ids for i in x) if unk is not None else 0
    if total == 0 or bad > 0.5 * total:
        raise AlembertError(
            f"student {name}: its tokenizer encodes {bad} of {total} tokens of the first texts as unknown; "
            "use a student whose vocabulary covers this text (or check the text's encoding)"
        )


def run_embedding_distill(cfg: DistillGeneralConfig, recipe: Recipe, callbacks: Callbacks | None = None) -> dict:
    stage = recipe.stages[0]
    if len(recipe.stages) != 1:
        raise AlembertError(f"recipe {recipe.name}: embedding distillation runs one stage; got {len(recipe.stages)}")
    if not cfg.data.corpus and not cfg.data.transfer_tasks:
        raise AlembertError(
            "embedding distillation needs text: "
            "pass --corpus (files, folders, 'squad') and/or --transfer-task sst2,mrpc"
        )
    run = Run("distill-general", cfg, callbacks)
    attn = "eager" if recipe.needs_attention else None
    teacher, teacher_tok = load_embedding_model(cfg.teacher, cfg.pooling, attn)
    teacher.eval().requires_grad_(False)
    builder = student_builder(cfg.student)  # an unknown student.builder is refused before anything loads
    one_round(cfg.student, "an embedding run")
    student_tok = embedding_student_tokenizer(cfg, teacher, teacher_tok)
    use_cache = cfg.cache_teacher and stage.cacheable
    if builder.needs_data:  # what it can refuse without the data, refused before the data loads
        check_embedding_student(cfg, teacher, student_tok)

    def make_student(data: StudentData | None = None):
        """(student with pooling and Dense, description), its mappings and its Dense start checked."""
        student, _, desc = make_embedding_student(
            cfg, teacher, teacher_tok, attn, uses_vectors=compares_vectors(stage), data=data
        )
        resolve_stage_mappings(stage, student, teacher)
        if getattr(student, "teacher_map", None) is not None and compares_vectors(stage) and not use_cache:
            raise AlembertError(
                "a static student compares its vectors with the teacher's cached embeddings mapped into its own "
                f"space; recipe {recipe.name} with --no-cache-teacher runs the teacher online: drop --no-cache-teacher"
            )
        if cfg.student.projection_init != "random" and student.fresh_dense and not use_cache:
            raise AlembertError(
                f"--set student.projection_init={cfg.student.projection_init} fits the Dense layer on cached teacher "
                f"embeddings, but recipe {recipe.name} runs the teacher online; use projection_init=random"
            )
        return student, desc

    made = None if builder.needs_data else make_student()  # a student of no data is checked before any data loads
    max_length = cfg.data.max_length
    texts = load_texts(cfg.data.corpus, cfg.data.transfer_tasks, None, cfg.data.text_column, cfg.data.max_texts)
    group = stage.group_size  # a ranking term trains on query groups (embedding/queries.py)
    queries = None
    if group or cfg.data.queries or cfg.data.pseudo_queries:
        if not group:
            raise AlembertError(
                f"--queries and --pseudo-queries feed a ranking term; recipe {recipe.name} has none: use --recipe "
                "embed-rank (or add an embed_rank loss)"
            )
        if not cfg.data.queries and not cfg.data.pseudo_queries:
            raise AlembertError(
                f"recipe {recipe.name} ranks each query's candidates: give queries with --queries FILE (or squad) "
                "and/or --pseudo-queries N"
            )
        if not use_cache:
            raise AlembertError(
                "the ranking term mines each query's candidates from the teacher's cached embeddings; "
                "drop --no-cache-teacher"
            )
        queries = query_set(texts, cfg.data.queries, cfg.data.pseudo_queries, cfg.train.seed, cfg.data.text_column)
        texts = queries.texts
    _check_tokenizer(student_tok, texts, cfg.student.path or cfg.teacher)
    same_tokens = student_tok.get_vocab() == teacher_tok.get_vocab()
    if not use_cache and not same_tokens:
        raise AlembertError(
            "token-level terms (or --no-cache-teacher) with a student of another tokenizer need an online aligned "
            "teacher, which embedding distillation does not support; use sentence-level terms only (embed-mse, "
            "embed-cosine, embed-sim)"
        )
    accelerator = run.make_accelerator(cfg.train, recipe, unused_modules=True)  # the encoder's pooler is never used
    teacher.to(accelerator.device)
    with run.cache_guard():  # the tokenised texts are cached by one process
        ds = tokenize_dataset(datasets.Dataset.from_dict({"text_a": texts}), student_tok, max_length)
    ds = ds.add_column("idx", list(range(len(ds))))
    if made is None:  # the builder reads real training batches, in the student's tokenizer
        loader = train_loader(ds, student_tok, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length)[0]
        made = make_student(StudentData(loader, student_tok))
    student, desc = made
    module = DistillModule(student, teacher, stage)
    tracked = cfg.eval_tasks[0] if cfg.eval_tasks else "stsb-zeroshot"
    main = MAIN_METRIC[tracked]

    def evaluate():
        model = accelerator.unwrap_model(module).student
        metrics = evaluate_embedding(model, student_tok, tracked, max_length, cfg.train.eval_batch_size)
        model.train()
        return metrics

    spec = FitSpec(cfg.train, main, evaluate, resume=run.stage_resume(0))
    if queries is None:
        loader, sampler = train_loader(ds, student_tok, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length)
    else:  # groups of the real shape; the real run mines the teacher's candidates once its embeddings are cached
        groups = queries.placeholder(group - 1, cfg.train.seed)
        loader, sampler = group_loader(
            ds, student_tok, groups, cfg.train.batch_size, cfg.train.seed, accelerator.num_processes
        )
    if run.dry_run:
        planned = PlannedStage(stage.name, module, loader, sampler, spec, "cached" if use_cache else "online")
        if use_cache:
            planned.cache_examples, planned.cache_bytes = len(texts), 4 * len(texts) * teacher.dim
            folder = embedding_cache_folder(
                teacher, teacher_tok, texts, max_length, autocast=AUTOCAST.get(cfg.train.mixed_precision)
            )
            planned.cache_ready = (folder / "meta.json").is_file()  # a cache on disk costs no teacher pass
            planned.cache_probe = lambda: _time_embedding(
                teacher, teacher_tok, texts, max_length, cfg.train.eval_batch_size
            )
            mapped = getattr(student, "teacher_map", None) is not None and compares_vectors(stage)
            module.__dict__["cache"] = _zero_embedding_cache(len(texts), student.dim if mapped else teacher.dim)
        return run.plan(
            what=f"distil the embeddings of {cfg.teacher} into {desc} with recipe {recipe.name}",
            examples={"train_examples": len(texts), "dev_examples": 0},
            stages=[planned],
            evaluations={"student": evaluate},
        )
    out = run.open("distill_general_config.yaml", cfg.model_copy(update={"recipe": recipe.model_dump(mode="json")}))
    if use_cache:
        with run.timed("teacher_cache"):  # every process computes its share of the shards
            module.__dict__["cache"] = build_embedding_cache(
                teacher,
                teacher_tok,
                texts,
                max_length,
                cfg.train.eval_batch_size,
                autocast=AUTOCAST.get(cfg.train.mixed_precision),
                accelerator=accelerator,
            )
    if queries is not None:  # in the teacher's own space, before a static student's mapping below
        with run.timed("mining"):
            groups = queries.groups(module.cache.emb, module.cache.folder, group - 1, accelerator)
        loader, sampler = group_loader(
            ds, student_tok, groups, cfg.train.batch_size, cfg.train.seed, accelerator.num_processes
        )
        run.logger.log(queries=len(queries.queries), pseudo_queries=queries.pseudo, candidates=group - 1)
    if use_cache and getattr(student, "teacher_map", None) is not None and compares_vectors(stage):
        cache = module.cache  # the student lives in its own (PCA) space: its vector terms compare there
        cache.emb = student.teacher_space(np.asarray(cache.emb))
        run.logger.log(teacher_embeddings_mapped=f"{teacher.dim} -> {student.dim} (the student's PCA)")
    if student.fresh_dense and cfg.student.projection_init != "random" and use_cache and run.resume is None:
        fitted = fit_projection_on(
            student,
            student_tok,
            texts,
            module.cache.emb,
            max_length,
            cfg.train.eval_batch_size,
            cfg.student.projection_init,
        )
        run.logger.log(**fitted)

    def on_best(metrics, step):
        save_embedding_model(accelerator.unwrap_model(module).student, student_tok, out)

    run.fit(module, loader, sampler, spec, on_best, name=stage.name)
    details: dict = {
        "max_length": max_length,
        **(
            {"queries": len(queries.queries), "pseudo_queries": queries.pseudo, "candidates": group - 1}
            if queries is not None
            else {}
        ),
        "teacher_cache_seconds": round(run.timers.wall("teacher_cache"), 1),
        "eval_seconds": round(run.timers.wall("eval"), 1),
    }
    dev, teacher_dev, kept = {}, {}, {}
    if run.is_main:
        best, best_tok = load_embedding_model(out)
        dev = {
            task: evaluate_embedding(best, best_tok, task, max_length, cfg.train.eval_batch_size)
            for task in cfg.eval_tasks
        }
        teacher_dev = {
            task: cached_evaluation(teacher, teacher_tok, task, max_length, cfg.train.eval_batch_size)
            for task in cfg.eval_tasks
        }
        details["sentences_per_second"] = {
            "teacher": round(encode_speed(teacher, teacher_tok, max_length), 1),
            "student": round(encode_speed(best, best_tok, max_length), 1),
        }
        kept = {
            task: round(100 * dev[task][MAIN_METRIC[task]] / teacher_dev[task][MAIN_METRIC[task]], 2)
            for task in cfg.eval_tasks
        }
        if compares_vectors(stage):  # trained into the teacher's space: its queries search the teacher's documents
            details["documents_by"] = asymmetric_search(best, best_tok, teacher, teacher_tok, cfg, max_length)
    summary = run.summary(
        kind="embedding",
        task="embedding",
        model=desc,
        teacher=cfg.teacher,
        recipe=recipe.name,
        main_metric=main,
        train_examples=len(texts),
        dev_examples=0,
        parameters=n_params(student),
        teacher_parameters=n_params(teacher),
        dev=dev,
        teacher_dev=teacher_dev,
        retention_value=kept,
        details=details,
    )
    return run.finish(
        summary, card=lambda out, s: write_embedding_card(out, {**card_view(s), "texts": s["train_examples"]}, recipe)
    )


def asymmetric_search(student, student_tok, teacher, teacher_tok, cfg, max_length: int) -> dict:
    """What the card says of asymmetric search (documents embedded once by the teacher, queries by the
    student): the teacher's name, and with squad-retrieval among the eval tasks its figures (the
    teacher's paragraphs come from the cache its own evaluation filled) or why it failed the space check."""
    out: dict = {"teacher": cfg.teacher}
    if "squad-retrieval" in cfg.eval_tasks:
        try:
            out["squad-retrieval"] = evaluate_embedding(
                student,
                student_tok,
                "squad-retrieval",
                max_length,
                cfg.train.eval_batch_size,
                documents=(teacher, teacher_tok),
            )
        except AlembertError as exc:  # a student not (yet) in the teacher's space: said, not fatal
            out["refused"] = str(exc)
    return out


def _time_embedding(teacher, tokenizer, texts: list[str], max_length: int, batch_size: int) -> float:
    """Seconds to embed every text once, from a few timed batches after a warm-up batch."""
    import time

    encode(teacher, tokenizer, texts[:batch_size], max_length, batch_size)
    sample = texts[batch_size : 4 * batch_size] or texts[:batch_size]
    t = time.perf_counter()
    encode(teacher, tokenizer, sample, max_length, batch_size)
    return (time.perf_counter() - t) / len(sample) * len(texts)


def _zero_embedding_cache(n: int, width: int):
    """A stand-in cache of zeros (the real one's shape and lookup cost) for the dry run's timed steps."""
    from alembert.embedding.cache import EmbeddingCache

    cache = EmbeddingCache.__new__(EmbeddingCache)
    cache.folder, cache.emb = None, np.zeros((n, width), np.float32)
    return cache
