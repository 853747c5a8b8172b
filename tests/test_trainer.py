"""DistillationTrainer: alembert's recipes inside transformers.Trainer, on tiny models and real SST-2 rows."""

import copy

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    TrainingArguments,
)
from transformers.trainer_utils import set_seed

from alembert import DistillationTrainer
from alembert.config.schema import DataConfig
from alembert.data.batching import train_loader
from alembert.data.glue import get_task
from alembert.data.load import load_split
from alembert.data.tokenize import tokenize_dataset
from alembert.distill.module import DistillModule
from alembert.distill.recipe import load_recipe
from alembert.distill.trainer import PROJECTIONS_FILE, pick_stage
from alembert.errors import AlembertError
from alembert.models.load import load_classifier
from alembert.models.student import student_from_config, student_from_teacher

BATCH = 16
# (recipe, stage, student shape): logit KD, TinyBERT's hidden + attention stage through a
# projection (narrower student), PKD's normalised [CLS] states
FAMILIES = [("kd", None, "slice"), ("tinybert", "intermediate", "narrow"), ("pkd-skip", None, "slice")]


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return load_classifier(tiny_teacher, get_task("sst2"), attn="eager").eval()


@pytest.fixture(scope="module")
def rows(bert_tokenizer):
    ds = load_split(DataConfig(task="sst2", max_train_samples=BATCH), get_task("sst2"), "train")
    return tokenize_dataset(ds, bert_tokenizer, 64)


def no_dropout(model):
    """Dropout off, so a step's loss is a function of the weights and the batch alone."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def make_student(teacher, shape):
    if shape == "narrow":
        student = student_from_config(teacher, num_layers=2, hidden_size=16, intermediate_size=32, num_heads=2, seed=1)
    else:
        student = student_from_teacher(teacher, [0, 2])
    student.set_attn_implementation("eager")
    return no_dropout(student)


def args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH,
        learning_rate=1e-3,
        train_sampling_strategy="sequential",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=7,
    )
    return TrainingArguments(**{**base, **kw})


@pytest.mark.parametrize(("recipe", "stage", "shape"), FAMILIES)
@pytest.mark.train
def test_first_step_loss_equals_alembert_distill(recipe, stage, shape, teacher, rows, bert_tokenizer, tmp_path):
    """The loss `alembert distill` computes on its first batch (its loader, its module, built after the
    same seed) is the loss the Trainer logs at its first step on the same rows in the same order."""
    student = make_student(teacher, shape)
    chosen = pick_stage(load_recipe(recipe), stage)
    set_seed(7)
    module = DistillModule(copy.deepcopy(student), teacher, chosen)
    module.train()
    loader, sampler = train_loader(rows, bert_tokenizer, BATCH, seed=0)
    batch, order = next(iter(loader)), next(iter(sampler))
    with torch.no_grad():
        expected, terms = module(batch)

    trainer = DistillationTrainer(
        model=student,
        teacher=teacher,
        recipe=recipe,
        stage=stage,
        args=args(tmp_path, max_steps=1),
        train_dataset=rows.select(order),
        data_collator=DataCollatorWithPadding(bert_tokenizer),
    )
    trainer.train()
    first = trainer.state.log_history[0]
    assert first["loss"] == pytest.approx(float(expected), abs=1e-6)
    for name, value in terms.items():  # every term logged by the Trainer's own log, with the same value
        assert first[name] == pytest.approx(float(value), abs=1e-6)


@pytest.mark.parametrize(("recipe", "stage", "shape"), FAMILIES)
@pytest.mark.train
def test_short_run_trains_student_and_projections(recipe, stage, shape, teacher, rows, bert_tokenizer, tmp_path):
    student = make_student(teacher, shape)
    trainer = DistillationTrainer(
        model=student,
        teacher=teacher,
        recipe=recipe,
        stage=stage,
        args=args(tmp_path, max_steps=3, per_device_train_batch_size=4, gradient_accumulation_steps=2),
        train_dataset=rows,
        eval_dataset=rows,
        data_collator=DataCollatorWithPadding(bert_tokenizer),
        processing_class=bert_tokenizer,
    )
    module = trainer.model
    before = {k: v.detach().clone() for k, v in module.named_parameters()}
    teacher_before = {k: v.detach().clone() for k, v in teacher.named_parameters()}
    trainer.train()
    changed = {k for k, v in module.named_parameters() if not torch.equal(v.detach(), before[k])}
    assert any(k.startswith("student.") for k in changed)
    projections = {k for k in before if k.startswith("projections.")}
    assert (shape == "narrow") == bool(projections) and projections <= changed  # the projections are optimised too
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.named_parameters())  # the teacher never moves
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logged) == 3 and all(set(module.term_names) <= set(r) for r in logged)
    metrics = trainer.evaluate()
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))
    trainer.save_model(tmp_path / "student")
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert saved.config.num_hidden_layers == 2
    assert (tmp_path / "student" / PROJECTIONS_FILE).is_file() == bool(projections)


@pytest.mark.train
def test_resume_restores_student_and_projections(teacher, rows, bert_tokenizer, tmp_path):
    student = make_student(teacher, "narrow")
    kw = dict(train_dataset=rows, data_collator=DataCollatorWithPadding(bert_tokenizer))
    run = DistillationTrainer(
        model=copy.deepcopy(student),
        teacher=teacher,
        recipe="tinybert",
        stage=0,
        args=args(tmp_path, max_steps=2, per_device_train_batch_size=8, save_strategy="steps", save_steps=1),
        **kw,
    )
    run.train()
    again = DistillationTrainer(
        model=copy.deepcopy(student),
        teacher=teacher,
        recipe="tinybert",
        stage=0,
        args=args(tmp_path, max_steps=2, per_device_train_batch_size=8),
        **kw,
    )
    again._load_from_checkpoint(str(tmp_path / "checkpoint-2"))
    for (k, v), (_, w) in zip(run.model.state_dict().items(), again.model.state_dict().items(), strict=True):
        assert torch.equal(v, w), k


def test_bad_inputs_are_one_line_errors(teacher, tmp_path):
    student = make_student(teacher, "slice")
    with pytest.raises(AlembertError, match="has 2 stages"):
        DistillationTrainer(model=student, teacher=teacher, recipe="tinybert", args=args(tmp_path))
    with pytest.raises(AlembertError, match="no stage 'final'"):
        DistillationTrainer(model=student, teacher=teacher, recipe="tinybert", stage="final", args=args(tmp_path))
    with pytest.raises(AlembertError, match="unknown recipe"):
        DistillationTrainer(model=student, teacher=teacher, recipe="nope", args=args(tmp_path))
    with pytest.raises(AlembertError, match="needs model="):
        DistillationTrainer(model=student, args=args(tmp_path))
    inline = {"name": "mine", "stages": [{"name": "s", "losses": [{"loss": "kd", "temperature": 3.0}]}]}
    trainer = DistillationTrainer(model=student, teacher=teacher, recipe=inline, args=args(tmp_path))
    assert trainer.model.term_names == ["kd"]


@pytest.mark.parametrize("recipe", ["kd", "pkd-skip"])
@pytest.mark.train
def test_cached_teacher_gives_the_online_loss_and_is_not_run_again(
    recipe, teacher, rows, bert_tokenizer, tmp_path, monkeypatch
):
    """cache_teacher=True: the first step's loss equals the online teacher's (same rows, same seed), and
    after the cache is built the teacher runs no training step (its forward is counted)."""
    monkeypatch.setenv("ALEMBERT_CACHE", str(tmp_path / "cache"))
    losses = {}
    for cached in (False, True):
        student = make_student(teacher, "slice")
        trainer = DistillationTrainer(
            model=student,
            teacher=teacher,
            recipe=recipe,
            args=args(tmp_path / str(cached), max_steps=2),
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(bert_tokenizer),
            processing_class=bert_tokenizer,
            cache_teacher=cached,
        )
        calls = []
        hook = teacher.register_forward_hook(lambda *a, calls=calls: calls.append(1))
        try:
            trainer.train()
        finally:
            hook.remove()
        losses[cached] = [r["loss"] for r in trainer.state.log_history if "loss" in r]
        assert bool(calls) != cached, (cached, len(calls))
    assert losses[True] == pytest.approx(losses[False], abs=1e-5)
    assert any((tmp_path / "cache" / "teacher").iterdir())


def test_cached_teacher_refuses_a_stage_the_cache_cannot_serve(teacher, rows, bert_tokenizer, tmp_path):
    with pytest.raises(AlembertError, match="does not keep"):
        DistillationTrainer(
            model=make_student(teacher, "narrow"),
            teacher=teacher,
            recipe="tinybert",
            stage=0,
            args=args(tmp_path),
            train_dataset=rows,
            processing_class=bert_tokenizer,
            cache_teacher=True,
        )


@pytest.mark.train
def test_bf16_training_arguments(teacher, rows, bert_tokenizer, tmp_path):
    """TrainingArguments(bf16=True) as usual: autocast on the CPU, the terms still logged."""
    from accelerate.state import AcceleratorState

    try:
        trainer = DistillationTrainer(
            model=make_student(teacher, "slice"),
            teacher=teacher,
            recipe="kd",
            args=args(tmp_path, max_steps=2, bf16=True),
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(bert_tokenizer),
        )
        trainer.train()
    finally:  # the process-wide accelerate state now says bf16: later tests in this process build their own
        AcceleratorState._reset_state(reset_partial_state=True)
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logged) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) and "kd" in r for r in logged)


def test_a_teacher_given_by_path_is_loaded_with_the_students_head(teacher, tiny_teacher, tmp_path):
    """teacher="<folder>" loads it (as AutoModelForSequenceClassification, the student's head);
    a path that is no model, or a student given by path, is one line."""
    student = make_student(teacher, "slice")
    trainer = DistillationTrainer(model=student, teacher=str(tiny_teacher), recipe="kd", args=args(tmp_path))
    loaded = trainer.teacher
    assert type(loaded).__name__ == "BertForSequenceClassification" and not loaded.training
    mine, theirs = loaded.state_dict(), teacher.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    with pytest.raises(AlembertError) as info:
        DistillationTrainer(model=student, teacher=str(tmp_path / "nowhere"), args=args(tmp_path))
    assert "\n" not in str(info.value) and "nowhere" in str(info.value)
    with pytest.raises(AlembertError, match="model= is a path"):
        DistillationTrainer(model=str(tiny_teacher), teacher=teacher, args=args(tmp_path))


@pytest.mark.train
def test_transfer_rows_train_through_the_teacher_only(teacher, rows, bert_tokenizer, tmp_path):
    transfer = rows.remove_columns("labels")
    trainer = DistillationTrainer(
        model=make_student(teacher, "slice"),
        teacher=teacher,
        recipe="kd",
        args=args(tmp_path, max_steps=2),
        train_dataset=rows,
        transfer_dataset=transfer,
        data_collator=DataCollatorWithPadding(bert_tokenizer),
    )
    train = trainer.train_dataset
    assert len(train) == 2 * len(rows) and train["labels"][: len(rows)] == rows["labels"]
    assert set(train["labels"][len(rows) :]) == {-100}
    trainer.train()  # the second batch is transfer rows only: kd trains, ce gives 0
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logged) == 2 and logged[1]["ce"] == 0.0 and logged[1]["kd"] > 0
    with pytest.raises(AlembertError, match="reads no teacher output"):
        DistillationTrainer(
            model=make_student(teacher, "slice"),
            teacher=teacher,
            recipe="ce",
            args=args(tmp_path),
            train_dataset=rows,
            transfer_dataset=transfer,
        )
    with pytest.raises(AlembertError, match="lack column"):
        DistillationTrainer(
            model=make_student(teacher, "slice"),
            teacher=teacher,
            recipe="kd",
            args=args(tmp_path),
            train_dataset=rows,
            transfer_dataset=transfer.remove_columns("input_ids"),
        )
