"""Student builders (alembert/students/): the fields choose the builder the flags always meant,
each builder makes the student (and the words) the commands made before, and a builder defined
in a new file that needs data (tests/helpers/toy_builder.py) is reached by ``distill`` and
``distill-general``, token-level and embedding recipes alike, after their data is loaded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from test_embedding import st_folder
from test_general import CORPUS
from transformers import AutoModel, AutoModelForSequenceClassification

import alembert.students
from alembert.config.schema import DataConfig, DistillGeneralConfig, StudentConfig
from alembert.errors import AlembertError
from alembert.models.student import student_from_config, student_from_teacher
from alembert.students import BUILDERS, StudentData, build_student, checkpoint_as_is, student_builder

TOY = Path(__file__).parent / "helpers" / "toy_builder.py"


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def toy():
    """Import tests/helpers/toy_builder.py (defining its class registers it); unregister it afterwards."""
    spec = importlib.util.spec_from_file_location("toy_builder", TOY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert BUILDERS["toy"] is module.ToyBuilder
    yield module
    BUILDERS.pop("toy")


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()


# ---------------------------------------------------------------- the registry


def test_every_module_of_the_package_registers_its_builder():
    import pkgutil

    modules = {f"alembert.students.{m.name}" for m in pkgutil.iter_modules(alembert.students.__path__)}
    assert {"checkpoint", "layers", "config"} <= set(BUILDERS)
    assert {BUILDERS[n].__module__ for n in ("checkpoint", "layers", "config")} <= modules
    assert not any(BUILDERS[n].needs_data for n in ("checkpoint", "layers", "config"))


@pytest.mark.parametrize(
    ("fields", "builder"),
    [
        ({}, "layers"),  # nothing: every other teacher layer
        ({"layers": [0, 2]}, "layers"),
        ({"path": "m"}, "checkpoint"),
        ({"path": "m", "layers": [1]}, "layers"),  # a slice of another model
        ({"num_layers": 2}, "config"),
        ({"hidden_size": 16, "num_heads": 2}, "config"),
        ({"path": "m", "num_layers": 2}, "checkpoint"),  # a path wins over a shape, as it always did
        ({"builder": "config", "path": "m"}, "config"),  # a name wins over the fields
    ],
)
def test_the_fields_choose_the_builder_the_flags_always_meant(fields, builder):
    assert student_builder(StudentConfig(**fields)).name == builder


def test_raw_text_and_qa_read_a_path_beside_layers_as_the_checkpoint_as_is():
    both = StudentConfig(path="m", layers=[0, 2])
    assert student_builder(checkpoint_as_is(both)).name == "checkpoint"
    assert student_builder(checkpoint_as_is(both.model_copy(update={"builder": "layers"}))).name == "layers"
    assert checkpoint_as_is(StudentConfig(layers=[0, 2])) == StudentConfig(layers=[0, 2])


def test_an_unknown_builder_is_one_line_naming_the_known_ones(teacher):
    with pytest.raises(AlembertError, match=r"student.builder 'nope' is not a student builder; use one of .*layers"):
        build_student(StudentConfig(builder="nope"), teacher)


def test_a_builder_that_reads_another_model_asks_for_its_path(teacher):
    with pytest.raises(AlembertError, match=r"'checkpoint' reads another model: pass --student PATH"):
        build_student(StudentConfig(builder="checkpoint"), teacher)


# ---------------------------------------------------------------- each builder, as the commands built before


def test_layers_of_the_teacher(teacher):
    made = build_student(StudentConfig(layers=[1, 3]), teacher, teacher_name="T")
    assert same_weights(made.model, student_from_teacher(teacher, [1, 3]))
    assert type(made.model) is type(teacher) and made.model.config.num_hidden_layers == 2
    assert (made.description, made.origin) == ("teacher layers 1,3 (0-based) of T", "teacher")
    default = build_student(StudentConfig(), teacher, teacher_name="T")  # every other layer of 4
    assert same_weights(default.model, student_from_teacher(teacher, [0, 2]))
    assert default.description == "teacher layers 0,2 (0-based) of T"


def test_layers_of_another_model_come_through_the_commands_loader(teacher, tiny_bert):
    other = AutoModel.from_pretrained(tiny_bert)
    asked = []

    def load(path):
        asked.append(path)
        return other

    made = build_student(StudentConfig(path="elsewhere", layers=[3, 1]), teacher, load=load)
    assert asked == ["elsewhere"] and same_weights(made.model, student_from_teacher(other, [3, 1]))
    assert (made.description, made.origin) == ("layers 3,1 (0-based) of elsewhere", "model")
    named = build_student(StudentConfig(builder="layers", path="elsewhere"), teacher, load=load)
    assert same_weights(named.model, student_from_teacher(other, [0, 2]))  # every other layer of that model


def test_checkpoint_is_the_loaded_model_as_it_is(teacher, tiny_bert):
    made = build_student(StudentConfig(path=str(tiny_bert)), teacher)  # default loader: the teacher's class
    assert isinstance(made.model, AutoModelForSequenceClassification.from_config(teacher.config).__class__)
    encoder = AutoModel.from_pretrained(tiny_bert)
    assert all(torch.equal(v, made.model.bert.state_dict()[k]) for k, v in encoder.state_dict().items())
    assert (made.description, made.origin) == (f"checkpoint {tiny_bert}", "model")
    sentinel = torch.nn.Linear(2, 2)
    assert build_student(StudentConfig(path="x"), teacher, load=lambda path: sentinel).model is sentinel


def test_config_is_the_same_random_init_for_the_same_seed(teacher):
    spec = StudentConfig(num_layers=2, hidden_size=16, intermediate_size=24, num_heads=2)
    made = build_student(spec, teacher, seed=5)
    assert same_weights(made.model, student_from_config(teacher, 2, 16, 24, 2, seed=5))
    assert not same_weights(made.model, build_student(spec, teacher, seed=6).model)
    assert (made.description, made.origin) == ("random init: 2 layers, hidden 16, FFN 24, 2 heads", "random")
    deep = build_student(StudentConfig(hidden_size=16, num_heads=2), teacher)  # depth defaults to the teacher's
    assert deep.description == "random init: 4 layers, hidden 16, FFN 64, 2 heads"


def test_a_trainer_script_makes_its_student_with_the_builders(teacher, tmp_path):
    """``DistillationTrainer`` takes the student it is given; the builders make it from a plain dict."""
    from transformers import TrainingArguments

    from alembert.distill.trainer import DistillationTrainer

    made = build_student({"num_layers": 2, "hidden_size": 16, "num_heads": 2}, teacher, seed=1)
    assert same_weights(made.model, student_from_config(teacher, 2, 16, None, 2, seed=1))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", save_strategy="no")
    trainer = DistillationTrainer(model=made.model, args=args, teacher=teacher, recipe="kd")
    assert trainer.model.student is made.model
    with pytest.raises(AlembertError, match=r"student num_layers: .*greater than or equal to 1"):
        build_student({"num_layers": 0}, teacher)


def test_a_builder_that_needs_data_gets_it_and_refuses_to_run_without(toy, teacher, bert_tokenizer):
    with pytest.raises(AlembertError, match="'toy' needs training data"):
        build_student(StudentConfig(builder="toy"), teacher)
    batch = dict(bert_tokenizer(["a real sentence"], return_tensors="pt"))
    made = build_student(StudentConfig(builder="toy"), teacher, StudentData([batch], bert_tokenizer), teacher_name="T")
    assert made.model.config.num_hidden_layers == 1 and same_weights(made.model, student_from_teacher(teacher, [0]))
    assert made.description == "toy: layer 0 of T after 1 batches" and toy.SEEN[-1]["batches"] == [batch]


def test_embedding_students_keep_their_wrapping(tmp_path, tiny_bert):
    """Pooling and normalisation are the teacher's; a slice keeps the teacher's Dense layers; a
    narrower random init gets a fresh Dense to the teacher's width (seeded), as before."""
    from alembert.embedding.student import make_embedding_student
    from alembert.models.sentence import load_embedding_model

    teacher, tok = load_embedding_model(st_folder(tmp_path / "st", tiny_bert, "mean", True))
    teacher.dense.append(torch.nn.Linear(32, 32))  # a teacher with a Dense layer of its own
    cfg = DistillGeneralConfig(teacher="T", student={"layers": [0, 2]}, train={"seed": 3})
    student, student_tok, desc = make_embedding_student(cfg, teacher, tok, None, uses_vectors=True)
    assert same_weights(student.encoder, student_from_teacher(teacher.encoder, [0, 2])) and student_tok is tok
    assert desc == "teacher layers 0,2 (0-based) of T" and student.dense[0] is teacher.dense[0]
    assert (student.pooling, student.normalize, student.fresh_dense) == ("mean", True, False)
    cfg = DistillGeneralConfig(teacher="T", student={"num_layers": 2, "hidden_size": 16, "num_heads": 2})
    narrow, _, desc = make_embedding_student(cfg, teacher, tok, None, uses_vectors=True)
    assert desc == "random init: 2 layers, hidden 16, FFN 64, 2 heads, Dense 16->32"
    assert len(narrow.dense) == 1 and narrow.fresh_dense and narrow.dim == 32
    torch.manual_seed(cfg.train.seed)  # the Dense starts from the run's seed
    assert torch.equal(narrow.dense[0].weight, torch.nn.Linear(16, 32).weight)


# ---------------------------------------------------------------- a new builder reaches every command


def real_rows(ids: torch.Tensor, mask: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(row[m.bool()].tolist()) for row, m in zip(ids, mask, strict=True)]


@pytest.mark.cli
def test_toy_builder_reaches_distill_after_the_data(toy, tiny_teacher, bert_tokenizer, tmp_path, capsys):
    from alembert.data.glue import get_task
    from alembert.data.load import load_split

    out = tmp_path / "toy"
    args = [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        tiny_teacher,
        "--recipe",
        "kd",
        "--task",
        "sst2",
        "--max-train-samples",
        48,
    ]
    args += ["--max-eval-samples", 24, "--batch-size", 16, "--max-steps", 2, "--output", out]
    code, stdout, err = run_cli([*args, "--set", "student.builder=toy", "--dry-run"], capsys)
    assert code == 0, err
    assert f"toy: layer 0 of {tiny_teacher} after 2 batches" in stdout and not out.exists()
    code, _, err = run_cli([*args, "--set", "student.builder=toy"], capsys)
    assert code == 0, err
    desc = f"toy: layer 0 of {tiny_teacher} after 2 batches"
    assert json.loads((out / "metrics.json").read_text())["model"] == desc
    assert desc in (out / "README.md").read_text()  # the model card's description
    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_hidden_layers == 1
    seen = toy.SEEN[-1]
    assert seen["teacher"] == "BertForSequenceClassification"
    assert seen["tokenizer"].get_vocab() == bert_tokenizer.get_vocab()
    train = load_split(DataConfig(task="sst2", max_train_samples=48), get_task("sst2"), "train")
    sentences = {tuple(bert_tokenizer(s)["input_ids"]) for s in train["text_a"]}
    for batch in seen["batches"]:  # real training rows, with their labels
        assert batch["input_ids"].shape[0] == 16 and "labels" in batch
        assert set(real_rows(batch["input_ids"], batch["attention_mask"])) <= sentences


@pytest.mark.cli
def test_toy_builder_reaches_distill_general_token_level(toy, tiny_bert, bert_tokenizer, tmp_path, capsys):
    corpus = tmp_path / "pride.txt"
    corpus.write_text("\n".join(CORPUS.read_text(encoding="utf-8").splitlines()[:120]), encoding="utf-8")
    out = tmp_path / "general"
    args = ["distill-general", "--teacher", tiny_bert, "--recipe", "tinybert-general", "--corpus", corpus]
    args += ["--max-length", 64, "--heldout", 8, "--batch-size", 8, "--max-steps", 2, "--output", out]
    code, _, err = run_cli([*args, "--set", "student.builder=toy"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["model"] == f"toy: layer 0 of {tiny_bert} after 2 batches"
    assert AutoModel.from_pretrained(out).config.num_hidden_layers == 1
    seen = toy.SEEN[-1]
    assert seen["teacher"] == "BertModel"  # tinybert-general needs no MLM head
    words = set(bert_tokenizer(corpus.read_text(encoding="utf-8"))["input_ids"])
    for batch in seen["batches"]:  # packed sequences of the corpus
        assert batch["input_ids"].shape[0] == 8 and batch["input_ids"].shape[1] <= 64
        assert {i for row in real_rows(batch["input_ids"], batch["attention_mask"]) for i in row} <= words


@pytest.mark.cli
def test_toy_builder_reaches_distill_general_embeddings(toy, tiny_bert, bert_tokenizer, tmp_path, capsys):
    from alembert.models.sentence import load_embedding_model

    teacher = st_folder(tmp_path / "st", tiny_bert, "mean", True)
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(40)]
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(texts))
    out = tmp_path / "embed"
    args = ["distill-general", "--teacher", teacher, "--recipe", "embed-mse", "--corpus", corpus, "--max-length", 32]
    args += ["--batch-size", 8, "--max-steps", 2, "--eval-tasks", "stsb-zeroshot", "--output", out]
    code, _, err = run_cli([*args, "--set", "student.builder=toy"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["model"] == f"toy: layer 0 of {teacher} after 2 batches"
    student, _ = load_embedding_model(out)
    assert student.config.num_hidden_layers == 1 and student.pooling == "mean" and student.normalize
    seen = toy.SEEN[-1]
    assert seen["teacher"] == "BertModel"  # the teacher's encoder: pooling is the command's wrapping
    rows = {tuple(bert_tokenizer(t)["input_ids"]) for t in texts}
    for batch in seen["batches"]:
        assert set(real_rows(batch["input_ids"], batch["attention_mask"])) <= rows


@pytest.mark.cli
def test_an_unknown_builder_is_one_line_before_any_output(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "o"
    args = [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        tiny_teacher,
        "--task",
        "sst2",
        "--output",
        out,
        "--set",
        "student.builder=nope",
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "student.builder 'nope' is not a student builder" in err and not out.exists()
