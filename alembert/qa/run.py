"""``finetune``, ``distill`` and ``evaluate`` for ``--task squad`` (extractive QA).

Same machinery as the classification commands (:func:`~alembert.training.loop.fit`,
checkpoints and ``--resume``, atomic outputs), with span-extraction models
(``AutoModelForQuestionAnswering``) and the SQuAD v1.1 metrics (main metric ``f1``).

Data: ``--train-file`` / ``--dev-file`` (SQuAD v1.1 JSON) when given; otherwise the
default article split of SQuAD v1.1 dev (:func:`~alembert.data.squad.split_by_article`:
38 articles to train, the 10 of :data:`~alembert.data.squad.TEST_ARTICLES` to test), from
``--data-dir``/dev-v1.1.json if that is given, else :func:`~alembert.data.squad.default_squad_file`.
``--max-train-samples`` / ``--max-eval-samples`` keep the first N questions.

Windows: ``max_length`` is resolved by the command (:meth:`~alembert.tasks.base.TaskKind.resolve_max_length`):
``--max-length`` (or ``data.max_length`` in a YAML config) when set, else the model's own
(its preprocessing record), else 384 (the SQuAD standard); the stride (context tokens shared
by consecutive windows) is a third of it, the standard ratio: 128 at 384, 85 at 256,
42 at 128. The saved ``*_config.yaml``, ``metrics.json`` and the model's record keep the
length actually used, so ``evaluate`` reads the same windows back.

Distillation: the teacher must be a saved QA model; the student is kept teacher layers,
a new shape, or an existing checkpoint (QA head), as for classification. The recipes run
unchanged through :class:`~alembert.distill.module.DistillModule`, which averages KD and
CE over the start and end distributions; the teacher runs online (no logit cache).
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from transformers import AutoModelForQuestionAnswering

from alembert.config.schema import DataConfig, DistillConfig, EvaluateConfig, FinetuneConfig
from alembert.data.batching import batched_loader, eval_batches
from alembert.data.squad import split_by_article, squad_examples
from alembert.distill.card import write_model_card
from alembert.distill.module import DistillModule, resolve_stage_mappings
from alembert.distill.recipe import load_recipe
from alembert.distill.rounds import Rounds, fit_stages, plan_stages
from alembert.errors import AlembertError
from alembert.files import save_model_atomic
from alembert.models.load import load_config, load_tokenizer, n_params, quiet_from_pretrained
from alembert.models.preprocessing import record
from alembert.models.resolve import resolve_model
from alembert.qa.features import QA_MODEL_COLUMNS, tokenize_squad
from alembert.qa.metrics import squad_metrics
from alembert.qa.postprocess import postprocess_predictions
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
from alembert.training.runner import Run, card_view
from alembert.training.supervised import SupervisedModule

TASK = "squad"
MAIN_METRIC = "f1"
MAX_LENGTH = 384


def qa_stride(max_length: int) -> int:
    """Context overlap of consecutive windows: a third of ``max_length`` (128 at 384)."""
    return max_length // 3


# ---------------------------------------------------------------- data and models
def qa_max_length(data: DataConfig) -> int:
    """The windows' length: ``data.max_length``, which the command resolved (see the module doc)."""
    if data.max_length is None:
        raise ValueError("data.max_length is unresolved: run through the task kind (TaskKind.resolve_max_length)")
    return data.max_length


def qa_examples(data: DataConfig, split: str):
    """``(examples, description)`` of the "train" or "dev" questions (see the module doc)."""
    path = data.train_file if split == "train" else data.dev_file
    if path is not None:
        ds, desc = squad_examples(path), f"{split} file {path}"
    else:
        source = Path(data.data_dir) / "dev-v1.1.json" if data.data_dir else None
        train, test = split_by_article(source)
        ds = train if split == "train" else test
        titles = sorted(set(ds["title"]))
        part = f"{len(titles)} {'train' if split == 'train' else 'test'} articles"
        desc = f"default SQuAD v1.1 dev split, {part}" + ("" if split == "train" else f" ({', '.join(titles)})")
    limit = data.max_train_samples if split == "train" else data.max_eval_samples
    if limit is not None and limit < len(ds):
        ds, desc = ds.select(range(limit)), f"{desc}, first {limit} questions"
    if len(ds) == 0:
        raise AlembertError(f"the squad {split} set is empty ({desc}); pass a SQuAD file with questions")
    return ds, f"{len(ds)} {split} questions: {desc}"


def is_qa_model(config) -> bool:
    return any(a.endswith("ForQuestionAnswering") for a in (config.architectures or []))


def load_qa_model(name: str | Path, attn: str | None = None, need_head: bool = False):
    """An ``AutoModelForQuestionAnswering``; a base encoder gets a new span head unless
    ``need_head`` (a teacher must already be fine-tuned for QA)."""
    path = resolve_model(name)
    if need_head and not is_qa_model(load_config(path)):
        raise AlembertError(
            f"model {name} is not a question-answering model; fine-tune it first with "
            "`alembert finetune --task squad` and pass that folder"
        )
    return quiet_from_pretrained(
        AutoModelForQuestionAnswering,
        path,
        f"question-answering model {name}",
        **({"attn_implementation": attn} if attn else {}),
    )


def qa_train_loader(features, tokenizer, batch_size: int, seed: int, group_by_length: bool = True):
    """(DataLoader, sampler) over train windows: model inputs plus start/end positions,
    batched by the one loader builder (same samplers, private generator)."""
    cols = [c for c in QA_MODEL_COLUMNS if c in features.column_names]
    return batched_loader(
        features, cols, transformers.DataCollatorWithPadding(tokenizer), batch_size, seed, group_by_length
    )


# ---------------------------------------------------------------- evaluation
@torch.inference_mode()
def predict_answers(model, tokenizer, examples, features, batch_size: int = 128) -> dict[str, str]:
    """Answer text per question id: windows run in length order, then span post-processing."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lengths = features["length"]
    starts: list = [None] * len(features)
    ends: list = [None] * len(features)
    for idx, batch in eval_batches(features, tokenizer, batch_size):
        out = model(**{k: v.to(device) for k, v in batch.items()})
        s, e = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
        for row, i in enumerate(idx):
            starts[i], ends[i] = s[row, : lengths[i]], e[row, : lengths[i]]
    model.train(was_training)
    return postprocess_predictions(examples, features, starts, ends)


def score(model, tokenizer, examples, features, batch_size: int = 128) -> dict[str, float]:
    """``{"exact_match", "f1"}`` (0-100) on pre-tokenised eval windows."""
    return squad_metrics(predict_answers(model, tokenizer, examples, features, batch_size), examples)


def evaluate_qa(
    model, tokenizer, examples, max_length: int = MAX_LENGTH, stride: int | None = None, batch_size: int = 128
) -> dict[str, float]:
    """Official SQuAD v1.1 ``{"exact_match", "f1"}`` of a QA model on ``examples``."""
    stride = qa_stride(max_length) if stride is None else stride
    features = tokenize_squad(examples, tokenizer, max_length, stride, train=False)
    return score(model, tokenizer, examples, features, batch_size)


def run_qa_evaluate(cfg: EvaluateConfig) -> tuple[dict[str, float], int, str]:
    """``alembert evaluate MODEL --task squad``: (metrics, number of questions, their description)."""
    tokenizer = load_tokenizer(cfg.model)
    dev, desc = qa_examples(cfg.data, "dev")
    model = load_qa_model(cfg.model, need_head=True)
    return evaluate_qa(model, tokenizer, dev, qa_max_length(cfg.data), None, cfg.batch_size), len(dev), desc


# ---------------------------------------------------------------- training
def _data(cfg, tokenizer):
    """Train windows, dev examples and windows, the resolved config, a description."""
    length = qa_max_length(cfg.data)
    stride = qa_stride(length)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"max_length": length})})
    train, train_desc = qa_examples(cfg.data, "train")
    dev, dev_desc = qa_examples(cfg.data, "dev")
    print(f"squad: {train_desc}\nsquad: {dev_desc}\nsquad: max length {length}, stride {stride}", flush=True)
    train_f = tokenize_squad(train, tokenizer, length, stride, train=True)
    dev_f = tokenize_squad(dev, tokenizer, length, stride, train=False)
    info = {
        "train_examples": len(train),
        "train_windows": len(train_f),
        "dev_examples": len(dev),
        "data": f"{train_desc}; {dev_desc}",
        "max_length": length,
        "stride": stride,
    }
    return train_f, dev, dev_f, cfg, info


def _details(info: dict) -> dict:
    return {k: info[k] for k in ("train_windows", "max_length", "stride", "data")}


def run_qa_finetune(cfg: FinetuneConfig, callbacks: Callbacks | None = None) -> dict:
    """``alembert finetune --task squad``: train a span head and keep the best-F1 model."""
    run = Run("finetune", cfg, callbacks)  # the output folder is checked here and created only after every check
    accelerator = run.make_accelerator(cfg.train)
    tokenizer = load_tokenizer(cfg.model)
    with run.cache_guard():  # the tokenised windows are cached by one process
        train_f, dev, dev_f, cfg, info = _data(cfg, tokenizer)
    model = load_qa_model(cfg.model)
    record(model, "extractive-qa", qa_max_length(cfg.data), stride=qa_stride(qa_max_length(cfg.data)))
    loader, sampler = qa_train_loader(
        train_f, tokenizer, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length
    )
    module = SupervisedModule(model)

    def evaluate():
        return score(accelerator.unwrap_model(module).model, tokenizer, dev, dev_f, cfg.train.eval_batch_size)

    spec = FitSpec(cfg.train, MAIN_METRIC, evaluate, resume=run.stage_resume(0))
    if run.dry_run:
        return run.plan(
            what=f"fine-tune {cfg.model} on squad",
            examples={"train_examples": info["train_examples"], "dev_examples": len(dev)},
            stages=[PlannedStage("train", module, loader, sampler, spec)],
            evaluations={"student": evaluate},
        )
    out = run.open("finetune_config.yaml", cfg)

    def on_best(metrics, step):
        save_model_atomic(accelerator.unwrap_model(module).model, tokenizer, out)

    run.fit(module, loader, sampler, spec, on_best)
    summary = run.summary(
        kind="extractive-qa",
        task=TASK,
        model=cfg.model,
        main_metric=MAIN_METRIC,
        train_examples=info["train_examples"],
        dev_examples=len(dev),
        parameters=n_params(model),
        details=_details(info),
    )
    return run.finish(summary)


def run_qa_distill(cfg: DistillConfig, kind, callbacks: Callbacks | None = None) -> dict:
    """``alembert distill --task squad``: distil a QA teacher stage after stage of the recipe; ``kind``: the
    task kind (its model card)."""
    d = cfg.data
    if d.transfer not in (None, "none") or d.transfer_size or d.augment_mlm or d.max_transfer_samples:
        raise AlembertError(
            "--transfer/--transfer-size/--augment-mlm: extractive QA distillation takes no transfer text "
            "(a question needs its paragraph and answer span); drop them"
        )
    recipe = load_recipe(cfg.recipe)
    run = Run("distill", cfg, callbacks)  # the output folder is checked here and created only after every check
    accelerator = run.make_accelerator(cfg.train, recipe)
    attn = "eager" if recipe.needs_attention else None
    tokenizer = load_tokenizer(cfg.teacher)
    teacher = load_qa_model(cfg.teacher, attn, need_head=True).to(accelerator.device).eval()
    teacher.requires_grad_(False)
    student_spec = checkpoint_as_is(cfg.student)
    builder = student_builder(student_spec)  # an unknown student.builder is refused before anything loads
    student_tokenizer(student_spec, tokenizer, cfg.teacher)  # one tokenizer for both: the vocabularies must match

    def make_student(data: StudentData | None = None) -> BuiltStudent:
        """The student with a QA head (kept layers and new shapes copy the teacher's), every mapping checked."""
        made = build_student(
            student_spec,
            teacher,
            data,
            teacher_name=cfg.teacher,
            seed=cfg.train.seed,
            rounds=True,  # distill/rounds.py cuts the later rounds
            load=lambda path: load_qa_model(path, attn),
        )
        for stage in recipe.stages:  # validate every mapping before any compute
            resolve_stage_mappings(stage, made.model, teacher)
        return made

    made = None if builder.needs_data else make_student()  # a student of no data is checked before any data loads
    with run.cache_guard():  # the tokenised windows are cached by one process
        train_f, dev, dev_f, cfg, info = _data(cfg, tokenizer)
    data = None
    if made is None:  # the builder reads real training windows
        loader = qa_train_loader(train_f, tokenizer, cfg.train.batch_size, cfg.train.seed, cfg.train.group_by_length)[0]
        data = StudentData(loader, tokenizer)
        made = make_student(data)
    student, student_desc = made.model, made.description
    record(student, "extractive-qa", qa_max_length(cfg.data), stride=qa_stride(qa_max_length(cfg.data)))
    bs = cfg.train.eval_batch_size
    # the recipe's stages, the last one in rounds of cut-then-distil with --prune-rounds (distill/rounds.py)
    rounds = Rounds(student_spec, recipe.stages, run, data, cfg.train.seed, student_spec.path or cfg.teacher)

    if data is not None:  # enough steps for every round, checked before the output folder exists
        rounds.check(recipe.stages[-1].train_config(cfg.train), len(data.batches))

    def stage_parts(rs, student):
        train_cfg = rs.stage.train_config(cfg.train)
        module = DistillModule(student, teacher, rs.stage)  # online teacher: the cache keeps only `logits`
        loader, sampler = qa_train_loader(
            train_f, tokenizer, train_cfg.batch_size, train_cfg.seed + rs.data_index, train_cfg.group_by_length
        )

        def evaluate():
            return score(accelerator.unwrap_model(module).student, tokenizer, dev, dev_f, bs)

        spec = FitSpec(train_cfg, MAIN_METRIC, evaluate, stage=rs.index, resume=run.stage_resume(rs.index))
        return module, loader, sampler, spec

    if run.dry_run:
        planned = [PlannedStage(rs.name, *parts, "online") for rs, parts in plan_stages(rounds, student, stage_parts)]
        return run.plan(
            what=f"distil {cfg.teacher} into {rounds.description or student_desc} on squad with recipe {recipe.name}",
            examples={"train_examples": info["train_examples"], "dev_examples": len(dev)},
            stages=planned,
            evaluations={
                "teacher": lambda: score(teacher, tokenizer, dev, dev_f, bs),
                "student": planned[-1].spec.evaluate,
            },
        )
    out = run.open("distill_config.yaml", cfg.model_copy(update={"recipe": recipe.model_dump(mode="json")}))
    teacher_dev = score(teacher, tokenizer, dev, dev_f, bs) if run.is_main else {}
    student = fit_stages(run, rounds, student, stage_parts, lambda model: save_model_atomic(model, tokenizer, out))
    summary = run.summary(
        kind="extractive-qa",
        task=TASK,
        model=rounds.description or student_desc,
        teacher=cfg.teacher,
        recipe=recipe.name,
        main_metric=MAIN_METRIC,
        teacher_dev=teacher_dev,
        train_examples=info["train_examples"],
        dev_examples=len(dev),
        parameters=n_params(student),
        teacher_parameters=n_params(teacher),
        details=_details(info),
    )
    return run.finish(summary, card=lambda out, s: write_model_card(out, card_view(s), recipe, kind))
