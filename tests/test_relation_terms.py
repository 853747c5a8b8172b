"""MiniLM / MiniLMv2 terms in the registry: recipes end to end on tiny models (task and raw text),
head-count rules, term values against direct calls of the losses, gradients, two tokenizers."""

import json

import pytest
import torch
from conftest import REPO, run_cli
from transformers import AutoConfig, AutoModelForSequenceClassification, MPNetTokenizer

from alembert.data.glue import get_task
from alembert.data.two_tokenizers import TwoTokenizerCollator
from alembert.distill.alignment import batch_alignment, gather_teacher
from alembert.distill.module import DistillModule, resolve_stage_mappings
from alembert.distill.recipe import load_recipe
from alembert.errors import AlembertError
from alembert.losses import attention_kl_loss, relation_loss
from alembert.models.capture import capture_qkv
from alembert.models.load import load_classifier, load_tokenizer
from alembert.models.student import student_from_config, student_from_teacher
from alembert.terms import get_term

CORPUS = REPO.parent / "shared" / "data" / "corpus" / "gutenberg" / "Austen_Pride.txt"
NARROW = "num_layers=2,hidden_size=16,intermediate_size=32,num_heads=4"  # the tiny teacher: 4 layers, width 32, 2 heads
HEADS2 = "recipe.stages.0.losses.0.relation_heads=2"  # the recipes' 12 relation heads do not divide width 32


def distill(teacher, out, recipe, *extra):
    return [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        teacher,
        "--recipe",
        recipe,
        "--task",
        "sst2",
        "--max-train-samples",
        32,
        "--max-eval-samples",
        16,
        "--epochs",
        1,
        "--batch-size",
        16,
        "--log-every",
        1,
        "--output",
        out,
        *extra,
    ]


def general(teacher, corpus, out, recipe, *extra):
    return [
        "distill-general",
        "--teacher",
        teacher,
        "--recipe",
        recipe,
        "--corpus",
        corpus,
        "--max-length",
        64,
        "--heldout",
        8,
        "--batch-size",
        8,
        "--log-every",
        1,
        "--max-steps",
        3,
        "--eval-every",
        3,
        "--output",
        out,
        *extra,
    ]


def logged(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def one_error_line(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "pride.txt"
    path.write_text("\n".join(CORPUS.read_text(encoding="utf-8").splitlines()[:80]), encoding="utf-8")
    return path


def batch_of_two():
    return {
        "input_ids": torch.tensor([[101, 2204, 3185, 2001, 2307, 102], [101, 2919, 102, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]),
        "labels": torch.tensor([1, 0]),
    }


def stage_of(*losses):
    return load_recipe({"name": "x", "stages": [{"losses": list(losses)}]}).stages[0]


# ----------------------------------------------------------------------------- registry


def test_terms_declare_what_they_need():
    at, vr, qkv = get_term("attention_kl"), get_term("value_relation"), get_term("qkv_relation")
    assert at.needs.attention and not at.needs.qkv and vr.needs.qkv and qkv.needs.qkv and not qkv.needs.attention
    assert not any(t.cacheable or t.projects for t in (at, vr, qkv)) and all(t.raw_text for t in (at, vr, qkv))
    assert at.default_mapping == vr.default_mapping == "last-layer" and qkv.default_mapping is None
    assert set(qkv.Params.model_fields) == {"relation_heads", "teacher_layer"} and set(vr.Params.model_fields) == {
        "relation_heads"
    }
    with pytest.raises(AlembertError, match="parameter 'relation_heads'.*greater than 0"):
        stage_of({"loss": "qkv_relation", "relation_heads": 0})
    with pytest.raises(AlembertError, match="parameter 'layer'.*its parameters: relation_heads, teacher_layer"):
        stage_of({"loss": "qkv_relation", "layer": 3})
    with pytest.raises(AlembertError, match="takes no mapping"):
        stage_of({"loss": "qkv_relation", "mapping": "last-layer"})
    for name in ("minilm", "minilmv2"):
        recipe = load_recipe(name)
        assert not recipe.stages[0].cacheable and recipe.stages[1].cacheable and recipe.find_unused_parameters
    assert load_recipe("minilm").needs_attention and not load_recipe("minilmv2").needs_attention
    for name in ("minilm-general", "minilmv2-general"):
        recipe = load_recipe(name)
        assert (
            len(recipe.stages) == 1
            and all(t.term.raw_text for t in recipe.stages[0].losses)
            and not recipe.needs_lm_head
        )


def test_checks_before_any_compute(tiny_teacher):
    teacher = load_classifier(tiny_teacher, get_task("sst2"), attn="eager")  # 4 layers, width 32, 2 heads
    narrow = student_from_config(teacher, num_layers=2, hidden_size=16, intermediate_size=32, num_heads=4)
    with pytest.raises(
        AlembertError, match="student has 4 heads and the teacher 2; use a student with 2 heads, or minilmv2"
    ):
        resolve_stage_mappings(stage_of({"loss": "attention_kl"}), narrow, teacher)
    with pytest.raises(AlembertError, match="student has 4 and the teacher 2; set relation_heads"):
        resolve_stage_mappings(stage_of({"loss": "value_relation"}), narrow, teacher)
    assert resolve_stage_mappings(stage_of({"loss": "value_relation", "relation_heads": 2}), narrow, teacher) == [
        [(2, 4)]
    ]
    with pytest.raises(
        AlembertError, match="12 relation heads do not divide the student's hidden size 16 .*teacher 32"
    ):
        resolve_stage_mappings(stage_of({"loss": "qkv_relation"}), narrow, teacher)
    with pytest.raises(AlembertError, match="teacher_layer 5 is out of range 1..4"):
        resolve_stage_mappings(
            stage_of({"loss": "qkv_relation", "relation_heads": 4, "teacher_layer": 5}), narrow, teacher
        )
    assert resolve_stage_mappings(stage_of({"loss": "qkv_relation", "relation_heads": 4}), narrow, teacher) == [
        [(2, 4)]
    ]
    assert resolve_stage_mappings(
        stage_of({"loss": "qkv_relation", "relation_heads": 4, "teacher_layer": 3}), narrow, teacher
    ) == [[(2, 3)]]


# ----------------------------------------------------------------------------- values and gradients


def test_term_values_are_the_loss_functions_on_the_same_batch(tiny_teacher):
    teacher = load_classifier(tiny_teacher, get_task("sst2"), attn="eager")
    student = student_from_teacher(teacher, [0, 2])  # 2 layers, 2 heads, eager like its teacher
    stage = stage_of(
        {"loss": "attention_kl", "weight": 2.0},
        {"loss": "value_relation"},
        {"loss": "qkv_relation", "relation_heads": 4, "teacher_layer": 3, "weight": 0.5},
    )
    module = DistillModule(student, teacher, stage).eval()  # no dropout: the direct forwards see the same numbers
    batch = batch_of_two()
    loss, terms = module(batch)

    inputs, mask = {k: batch[k] for k in ("input_ids", "attention_mask")}, batch["attention_mask"]
    with torch.no_grad(), capture_qkv(teacher, [3, 4]) as tq:
        t = teacher(**inputs, output_attentions=True)
    with capture_qkv(student, [2]) as sq:
        s = student(**inputs, output_attentions=True)
    expected = {
        "attention_kl": attention_kl_loss(s.attentions[1], t.attentions[3], mask),
        "value_relation": relation_loss(sq[(2, "v")], tq[(4, "v")], mask, 2),
        "qkv_relation": sum(relation_loss(sq[(2, k)], tq[(3, k)], mask, 4) for k in "qkv"),
    }
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-5, abs=1e-7), name
        assert value.item() > 0
    total = 2.0 * expected["attention_kl"] + expected["value_relation"] + 0.5 * expected["qkv_relation"]
    assert loss.item() == pytest.approx(total.item(), rel=1e-5)


def test_gradients_reach_only_the_student(tiny_teacher):
    teacher = load_classifier(tiny_teacher, get_task("sst2"))  # sdpa: the relation terms need no eager attention
    student = student_from_config(teacher, num_layers=2, hidden_size=16, intermediate_size=32, num_heads=4)
    module = DistillModule(student, teacher, stage_of({"loss": "qkv_relation", "relation_heads": 4}))
    assert len(module.projections) == 0 and not any(p is q for p in module.parameters() for q in teacher.parameters())
    loss, terms = module(batch_of_two())
    loss.backward()
    assert set(terms) == {"qkv_relation"} and loss.item() > 0
    assert all(p.grad is None for p in teacher.parameters())
    top = student.bert.encoder.layer[1].attention.self
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in (top.query, top.key, top.value))
    assert student.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert (
        student.classifier.weight.grad is None
    )  # the relations never reach the head: DDP needs find_unused_parameters
    # the hooks are gone after the step
    assert not any(m._forward_hooks for m in (*student.modules(), *teacher.modules()))


# ----------------------------------------------------------------------------- the CLI, task stage


@pytest.mark.parametrize(
    "recipe,extra",
    [("minilm", ["--student-layers", "0,2"]), ("minilmv2", ["--student-config", NARROW, "--set", HEADS2])],
)
@pytest.mark.cli
def test_task_recipes_end_to_end(recipe, extra, tiny_teacher, tmp_path, capsys):
    out = tmp_path / recipe
    code, _, err = run_cli(distill(tiny_teacher, out, recipe, *extra), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == recipe and [s["stage"] for s in metrics["stages"]] == [
        s.name for s in load_recipe(recipe).stages
    ]
    records = logged(out)
    for stage in load_recipe(recipe).stages:
        for term in stage.losses:
            values = [r[term.loss] for r in records if "step" in r and term.loss in r]
            assert values and all(v >= 0 and v == v for v in values), term.loss
    assert any(r.get("qkv_relation", r.get("value_relation", 0)) > 0 for r in records if "step" in r)
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.num_hidden_layers == 2
    if recipe == "minilmv2":  # student and teacher head counts differ
        assert student.config.num_attention_heads == 4 and student.config.hidden_size == 16
    assert "Retention" in (out / "README.md").read_text()
    code, stdout, err = run_cli(["evaluate", out, "--task", "sst2", "--max-eval-samples", 16], capsys)
    assert code == 0, err


@pytest.mark.cli
def test_minilm_refuses_other_head_counts_in_one_line(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(distill(tiny_teacher, out, "minilm", "--student-config", NARROW), capsys)
    one_error_line(code, err, "student has 4 heads and the teacher 2", "minilmv2")
    assert not out.exists()


@pytest.mark.cli
def test_relation_heads_that_do_not_divide_are_refused_in_one_line(tiny_teacher, tmp_path, capsys):
    code, _, err = run_cli(distill(tiny_teacher, tmp_path / "o", "minilmv2", "--student-layers", "0,2"), capsys)
    one_error_line(code, err, "12 relation heads", "hidden size 32", "relation_heads")


# ----------------------------------------------------------------------------- the CLI, raw text


@pytest.mark.parametrize(
    "recipe,extra,terms",
    [
        ("minilm-general", ["--student-layers", "0,2"], {"heldout_attention_kl", "heldout_value_relation"}),
        ("minilmv2-general", ["--student-config", NARROW, "--set", HEADS2], {"heldout_qkv_relation"}),
    ],
)
@pytest.mark.cli
def test_general_recipes_end_to_end(recipe, extra, terms, tiny_bert, corpus, tmp_path, capsys):
    out = tmp_path / recipe
    code, _, err = run_cli(general(tiny_bert, corpus, out, recipe, *extra), capsys)
    assert code == 0, err
    evals = [r["eval"] for r in logged(out) if "eval" in r]
    assert evals and terms <= set(evals[-1]) and evals[-1]["heldout_loss"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == recipe and metrics["parameters"] < metrics["teacher_parameters"]


@pytest.mark.cli
def test_minilm_general_refuses_other_head_counts_in_one_line(tiny_bert, corpus, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(general(tiny_bert, corpus, out, "minilm-general", "--student-config", NARROW), capsys)
    one_error_line(code, err, "student has 4 heads and the teacher 2", "minilmv2")
    assert not out.exists()


# ----------------------------------------------------------------------------- two tokenizers


@pytest.fixture(scope="module")
def mpnet_teacher(tmp_path_factory, bert_tokenizer):
    """A tiny MPNet classifier with MPNet's vocabulary (BERT's + 5 specials), as in test_cross_tokenizer."""
    folder = tmp_path_factory.mktemp("mpnet-teacher")
    pieces = sorted(bert_tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (folder / "vocab.txt").write_text(
        "\n".join(["<s>", "<pad>", "</s>", "<unk>", *(p for p, _ in pieces), "<mask>"]) + "\n"
    )
    tok = MPNetTokenizer(vocab=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "mpnet",
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        num_labels=2,
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_aligned_relations_are_the_gathered_teacher_rows(mpnet_teacher, tiny_bert):
    teacher = load_classifier(mpnet_teacher, get_task("sst2")).eval()
    student = load_classifier(tiny_bert, get_task("sst2")).eval()
    t_tok, s_tok = load_tokenizer(mpnet_teacher), load_tokenizer(tiny_bert)
    features = []
    for a, b in [("a fine film", "it was good"), ("not good at all , sadly", None)]:
        s, t = s_tok(a, b), t_tok(a, b)
        features.append(
            {**s, "labels": 1, **{f"teacher_{k}": v for k, v in t.items() if k in ("input_ids", "attention_mask")}}
        )
    batch = TwoTokenizerCollator(t_tok, s_tok)(features)
    assert batch["teacher_input_ids"].shape[1] == batch["input_ids"].shape[1] + 1  # MPNet's </s></s>: positions differ
    module = DistillModule(
        student, teacher, stage_of({"loss": "qkv_relation", "relation_heads": 4}), tokenizers=(t_tok, s_tok)
    )
    _, terms = module(batch)

    aligned = batch_alignment(batch, t_tok, s_tok, "strict")
    with torch.no_grad(), capture_qkv(teacher, [2]) as tq:
        teacher(input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"])
    with capture_qkv(student, [4]) as sq:
        student(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    expected = sum(
        relation_loss(sq[(4, k)], gather_teacher(tq[(2, k)], aligned.teacher_index), aligned.mask, 4) for k in "qkv"
    )
    assert terms["qkv_relation"].item() == pytest.approx(expected.item(), rel=1e-5) and expected.item() > 0


def cross(teacher, student, out, recipe, mode, *extra):
    return [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        teacher,
        "--student",
        student,
        "--student-layers",
        "0,2",
        "--recipe",
        recipe,
        "--task",
        "sst2",
        "--max-train-samples",
        32,
        "--max-eval-samples",
        16,
        "--epochs",
        1,
        "--batch-size",
        8,
        "--log-every",
        1,
        "--cross-tokenizer",
        mode,
        "--output",
        out,
        *extra,
    ]


@pytest.mark.parametrize("recipe,extra", [("minilm", []), ("minilmv2", ["--set", HEADS2])])
@pytest.mark.cli
def test_cross_tokenizer_strict_runs(recipe, extra, mpnet_teacher, tiny_bert, tmp_path, capsys):
    out = tmp_path / recipe
    code, _, err = run_cli(cross(mpnet_teacher, tiny_bert, out, recipe, "strict", *extra), capsys)
    assert code == 0, err
    term = "qkv_relation" if recipe == "minilmv2" else "value_relation"
    assert any(r.get(term, 0) > 0 for r in logged(out) if "step" in r)


@pytest.mark.cli
def test_cross_tokenizer_cls_refuses_relations_in_one_line(mpnet_teacher, tiny_bert, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(cross(mpnet_teacher, tiny_bert, out, "minilmv2", "cls", "--set", HEADS2), capsys)
    one_error_line(code, err, "stage 'relations' has relation terms", "--cross-tokenizer strict")
    assert not out.exists()
