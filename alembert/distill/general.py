"""``alembert distill-general``: task-agnostic distillation on raw text.

The corpus is packed into sequences of whole sentences (:mod:`alembert.data.corpus`);
recipes with vocabulary losses (DistilBERT's triple loss) see dynamically masked text
(:mod:`alembert.data.masking`, new masks every batch), the others plain text. Teacher
and student are base encoders, or masked-LM models when the recipe needs vocabulary
outputs; then the teacher must ship an MLM head, and a student without one gets a head
tied to its input embeddings. The result is an ordinary checkpoint that
``alembert distill --student`` takes for the task stage.
"""

from __future__ import annotations

import torch
from transformers import AutoModel, AutoModelForMaskedLM, DataCollatorWithPadding

from alembert.config.schema import DistillGeneralConfig
from alembert.data.batching import batched_loader
from alembert.data.corpus import packed_corpus
from alembert.data.masking import MLMCollator
from alembert.distill.module import DistillModule, resolve_stage_mappings
from alembert.distill.recipe import Recipe
from alembert.distill.rounds import Rounds, fit_stages, plan_stages
from alembert.errors import AlembertError
from alembert.files import save_model_atomic
from alembert.models.load import load_tokenizer, n_params, quiet_from_pretrained
from alembert.models.resolve import resolve_model
from alembert.students import (
    BuiltStudent,
    StudentData,
    build_student,
    checkpoint_as_is,
    student_builder,
    student_tokenizer,
)
from alembert.training.loop import Callbacks, FitSpec
from alembert.training.plan import PlannedStage
from alembert.training.runner import Run

COLUMNS = ["input_ids", "attention_mask", "token_type_ids"]
PACKED_LENGTH = 128  # tokens per packed sequence unless --max-length: BERT's (and TinyBERT's) pre-training length


def load_encoder(name: str, lm_head: bool, attn: str | None, role: str):
    """A base encoder, or a masked-LM model whose head must exist in the checkpoint when ``role`` is teacher."""
    path = resolve_model(name)
    cls = AutoModelForMaskedLM if lm_head else AutoModel
    model, info = quiet_from_pretrained(
        cls, path, f"{role} {name}", output_loading_info=True, **({"attn_implementation": attn} if attn else {})
    )
    missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
    if lm_head and role == "teacher" and missing:
        raise AlembertError(
            f"teacher {name} has no masked-LM head (missing {missing[0]} and {len(missing) - 1} more); the recipe's "
            "vocabulary losses (kd/mlm) need one: use --recipe tinybert-general or cosine-hidden, or a teacher with an "
            "MLM head"
        )
    return model


def load_student(path: str, lm_head: bool, attn: str | None):
    """Another model folder as a student; a masked-LM head missing from it starts tied to the input embeddings."""
    student = load_encoder(path, lm_head, attn, "student")
    if lm_head:
        student.tie_weights()
    return student


def corpus_loaders(cfg: DistillGeneralConfig, tokenizer, masked: bool):
    """(training loader, its sampler, held-out sequences and their collator, training sequences, the
    same training batches from a loader of their own for a student builder that needs data)."""
    heldout, train = packed_corpus(cfg.data, tokenizer)
    cols = [c for c in COLUMNS if c in train.column_names]
    seed = cfg.train.seed
    collate = (
        MLMCollator(tokenizer, cfg.data.mlm_probability, seed=seed) if masked else DataCollatorWithPadding(tokenizer)
    )
    loader, sampler = batched_loader(train, cols, collate, cfg.train.batch_size, seed)
    eval_collate = MLMCollator(tokenizer, cfg.data.mlm_probability, seed=seed + 1) if masked else collate
    builder_collate = MLMCollator(tokenizer, cfg.data.mlm_probability, seed=seed) if masked else collate
    for_builder = StudentData(batched_loader(train, cols, builder_collate, cfg.train.batch_size, seed)[0], tokenizer)
    return loader, sampler, (heldout.with_format("torch", columns=cols), eval_collate), len(train), for_builder


@torch.no_grad()
def heldout_loss(module, heldout, batch_size: int) -> dict[str, float]:
    """Mean distillation loss (and terms) on the held-out sequences, dropout off, fixed masks."""
    data, collate = heldout
    if isinstance(collate, MLMCollator):
        collate.set_epoch(0)
    module.eval()
    sums: dict[str, float] = {}
    batches = 0
    for start in range(0, len(data), batch_size):
        rows = data[start : start + batch_size]
        batch = collate([{k: v[j] for k, v in rows.items()} for j in range(len(rows["input_ids"]))])
        device = next(module.parameters()).device
        loss, terms = module({k: v.to(device) for k, v in batch.items()})
        for k, v in {"loss": loss, **terms}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        batches += 1
    module.train()
    return {f"heldout_{k}": v / batches for k, v in sums.items()}


def run_distill_general(cfg: DistillGeneralConfig, recipe: Recipe, callbacks: Callbacks | None = None) -> dict:
    """General distillation on raw text with a token-level ``recipe``; the ``metrics.json`` dict
    (or, with ``cfg.dry_run``, the plan). Recipes on sentence embeddings run in :mod:`alembert.embedding.run`."""
    if len(recipe.stages) != 1 or not all(t.term.raw_text for t in recipe.stages[0].losses):
        raise AlembertError(
            f"recipe {recipe.name} is not a one-stage raw-text recipe (no ce/pkd terms); "
            "use distilbert-general, tinybert-general or cosine-hidden"
        )
    if not cfg.data.corpus:
        raise AlembertError("distill-general needs raw text: pass --corpus PATH (files or folders of .txt)")
    run = Run("distill-general", cfg, callbacks)
    stage = recipe.stages[0]
    lm_head = recipe.needs_lm_head
    attn = "eager" if recipe.needs_attention else None
    accelerator = run.make_accelerator(cfg.train, recipe)
    tokenizer = load_tokenizer(cfg.teacher)
    teacher = load_encoder(cfg.teacher, lm_head, attn, "teacher").eval()
    teacher.requires_grad_(False)
    student_spec = checkpoint_as_is(cfg.student)
    builder = student_builder(student_spec)  # an unknown student.builder is refused before anything loads
    student_tokenizer(student_spec, tokenizer, cfg.teacher)  # one tokenizer for both: the vocabularies must match

    def make_student(data: StudentData | None = None) -> BuiltStudent:
        made = build_student(
            student_spec,
            teacher,
            data,
            teacher_name=cfg.teacher,
            seed=cfg.train.seed,
            rounds=True,  # distill/rounds.py cuts the later rounds
            load=lambda path: load_student(path, lm_head, attn),
        )
        resolve_stage_mappings(stage, made.model, teacher)
        return made

    made = None if builder.needs_data else make_student()  # a student of no data is checked before any data loads
    with run.cache_guard():  # the packed corpus is cached by one process
        loader, sampler, heldout, n_train, for_builder = corpus_loaders(cfg, tokenizer, masked=lm_head)
    made = made or make_student(for_builder)
    student = made.model
    teacher.to(accelerator.device)
    # one stage, or rounds of cut-then-distil with --prune-rounds (distill/rounds.py)
    rounds = Rounds(student_spec, [stage], run, for_builder, cfg.train.seed, student_spec.path or cfg.teacher)
    if builder.needs_data:  # enough steps for every round, checked before the output folder exists
        rounds.check(cfg.train, len(loader))

    def stage_parts(rs, student):
        module = DistillModule(student, teacher, stage)

        def evaluate():
            return heldout_loss(accelerator.unwrap_model(module), heldout, cfg.train.eval_batch_size)

        spec = FitSpec(cfg.train, "heldout_loss", evaluate, minimize=True, stage=rs.index)
        spec.resume = run.stage_resume(rs.index)
        return module, loader, sampler, spec

    if run.dry_run:
        planned = [PlannedStage(rs.name, *parts, "online") for rs, parts in plan_stages(rounds, student, stage_parts)]
        return run.plan(
            what=f"general distillation of {cfg.teacher} into {rounds.description or made.description} with recipe "
            f"{recipe.name} on {', '.join(cfg.data.corpus)}",
            examples={"train_examples": n_train, "dev_examples": cfg.data.heldout},
            stages=planned,
            evaluations={"student": planned[-1].spec.evaluate},
        )
    out = run.open("distill_general_config.yaml", cfg.model_copy(update={"recipe": recipe.model_dump(mode="json")}))
    student = fit_stages(run, rounds, student, stage_parts, lambda model: save_model_atomic(model, tokenizer, out))
    summary = run.summary(
        kind="corpus",
        task="corpus",
        model=rounds.description or made.description,
        teacher=cfg.teacher,
        recipe=recipe.name,
        main_metric="heldout_loss",
        train_examples=n_train,
        dev_examples=cfg.data.heldout,
        parameters=n_params(student),
        teacher_parameters=n_params(teacher),
        details={"corpus": cfg.data.corpus, "max_length": cfg.data.max_length},
    )
    return run.finish(summary)
