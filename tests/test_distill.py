"""Task distillation end to end on tiny models and real SST-2 rows."""

import json

import pytest
import torch
import yaml
from conftest import run_cli, save_tiny
from transformers import AutoModelForSequenceClassification

from alembert.config.schema import DistillConfig
from alembert.data.glue import get_task
from alembert.distill.module import DistillModule
from alembert.distill.recipe import load_recipe, recipe_names
from alembert.models.load import load_classifier
from alembert.models.student import student_from_config, student_from_teacher


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
        48,
        "--max-eval-samples",
        24,
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


def test_packaged_recipes():
    assert set(recipe_names()) >= {"kd", "distilbert", "pkd-skip", "pkd-last", "tinybert", "ce"}
    assert [s.name for s in load_recipe("tinybert").stages] == ["intermediate", "prediction"]


@pytest.mark.parametrize("recipe", ["kd", "distilbert", "pkd-skip", "pkd-last", "tinybert", "ce"])
@pytest.mark.cli
def test_each_recipe_end_to_end(recipe, tiny_teacher, tmp_path, capsys):
    out = tmp_path / recipe
    code, _, err = run_cli(distill(tiny_teacher, out, recipe, "--student-layers", "0,2"), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == recipe and metrics["parameters"] < metrics["teacher_parameters"]
    terms = {k for line in (out / "log.jsonl").read_text().splitlines() for k in json.loads(line)}
    for stage in load_recipe(recipe).stages:
        assert {t.loss for t in stage.losses} <= terms  # every term logged separately
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.num_hidden_layers == 2
    assert "Retention" in (out / "README.md").read_text()
    DistillConfig.model_validate(yaml.safe_load((out / "distill_config.yaml").read_text()))  # reloadable
    code, stdout, err = run_cli(["evaluate", out, "--task", "sst2", "--max-eval-samples", 24], capsys)
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(
        metrics["dev"]["accuracy"], abs=1e-9
    )


@pytest.mark.cli
def test_narrow_tinybert_student_trains_through_projection(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "narrow"
    code, _, err = run_cli(
        distill(
            tiny_teacher,
            out,
            "tinybert",
            "--student-config",
            "num_layers=2,hidden_size=16,intermediate_size=32,num_heads=2",
        ),
        capsys,
    )
    assert code == 0, err
    assert AutoModelForSequenceClassification.from_pretrained(out).config.hidden_size == 16
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    hidden = [r["hidden_mse"] for r in records if "step" in r and "hidden_mse" in r]
    assert len(hidden) >= 2 and all(h > 0 for h in hidden)


def test_gradients_reach_student_and_projection_only(tiny_teacher):
    teacher = load_classifier(tiny_teacher, get_task("sst2"), attn="eager")
    student = student_from_config(teacher, num_layers=2, hidden_size=16, intermediate_size=32, num_heads=2)
    module = DistillModule(student, teacher, load_recipe("tinybert").stages[0])
    assert len(module.projections) == 1 and not any(p is q for p in module.parameters() for q in teacher.parameters())
    batch = {
        "input_ids": torch.tensor([[101, 2204, 3185, 102], [101, 2919, 102, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        "labels": torch.tensor([1, 0]),
    }
    loss, terms = module(batch)
    loss.backward()
    assert set(terms) == {"hidden_mse", "attention"}
    assert all(p.grad is None for p in teacher.parameters())
    assert module.projections["0"].weight.grad is not None
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


@pytest.mark.train
def test_kd_pulls_student_towards_teacher(tiny_teacher):
    teacher = load_classifier(tiny_teacher, get_task("sst2")).eval()
    with torch.no_grad():
        teacher.classifier.weight.mul_(200)  # confident, input-dependent targets
    student = student_from_teacher(teacher, [0]).eval()
    student.classifier.reset_parameters()
    module = DistillModule(
        student,
        teacher,
        load_recipe({"name": "x", "stages": [{"losses": [{"loss": "kd", "temperature": 1}]}]}).stages[0],
    )
    batch = {
        "input_ids": torch.randint(1000, 2000, (8, 6)),
        "attention_mask": torch.ones(8, 6, dtype=torch.long),
        "labels": torch.zeros(8, dtype=torch.long),
    }
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    first = module(batch)[0].item()
    for _ in range(20):
        opt.zero_grad()
        module(batch)[0].backward()
        opt.step()
    assert module(batch)[0].item() < 0.5 * first


@pytest.mark.cli
def test_bad_mapping_fails_before_any_output(tiny_teacher, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: bad\nstages:\n  - losses:\n      - {loss: pkd, mapping: '1:9'}\n")
    out = tmp_path / "out"
    code, _, err = run_cli(distill(tiny_teacher, out, recipe, "--student-layers", "0,2"), capsys)
    assert code == 2 and "teacher layer 9 out of range 0..4" in err
    assert not out.exists()


@pytest.mark.cli
def test_attention_head_mismatch(tiny_teacher, tmp_path, capsys):
    code, _, err = run_cli(
        distill(
            tiny_teacher, tmp_path / "o", "tinybert", "--student-config", "num_layers=2,hidden_size=16,num_heads=4"
        ),
        capsys,
    )
    assert code == 2 and "head counts" in err


@pytest.mark.cli
def test_vocabulary_mismatch(tiny_teacher, tmp_path, capsys):
    from transformers import BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]))
    other = save_tiny(tmp_path / "other", BertTokenizerFast(vocab_file=str(vocab)), layers=2)
    code, _, err = run_cli(distill(tiny_teacher, tmp_path / "o", "kd", "--student", other), capsys)
    assert code == 2 and "different vocabularies" in err
