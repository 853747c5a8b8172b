"""General distillation on raw text: the triple loss on a tiny MLM teacher, recipes without a head, two stages."""

import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli, save_tiny
from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification

pytestmark = pytest.mark.cli

CORPUS = REPO.parent / "shared" / "data" / "corpus" / "gutenberg" / "Austen_Pride.txt"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[:120]
    path = tmp_path_factory.mktemp("corpus") / "pride.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def mlm_teacher(tmp_path_factory, bert_tokenizer) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mlm-teacher")
    config = AutoConfig.for_model(
        "bert",
        vocab_size=len(bert_tokenizer),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    AutoModelForMaskedLM.from_config(config).save_pretrained(path)
    bert_tokenizer.save_pretrained(path)
    return path


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
        "--student-layers",
        "0,2",
        "--output",
        out,
        *extra,
    ]


def evals(out):
    return [json.loads(line)["eval"] for line in (out / "log.jsonl").read_text().splitlines() if '"eval"' in line]


def test_triple_loss_trains_and_decreases(mlm_teacher, corpus, tmp_path, capsys):
    out = tmp_path / "triple"
    code, _, err = run_cli(
        general(mlm_teacher, corpus, out, "distilbert-general", "--max-steps", 24, "--eval-every", 6, "--lr", 2e-3),
        capsys,
    )
    assert code == 0, err
    history = evals(out)
    assert {"heldout_kd", "heldout_mlm", "heldout_cosine"} <= set(history[0])
    assert history[-1]["heldout_loss"] < history[0]["heldout_loss"]
    student = AutoModelForMaskedLM.from_pretrained(out)
    assert student.config.num_hidden_layers == 2
    assert (
        student.get_output_embeddings().weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()
    )  # tied head


@pytest.mark.parametrize(
    "recipe,kept,dropped",
    [("distilbert-general-no-cos", {"kd", "mlm"}, "cosine"), ("distilbert-general-no-kd", {"mlm", "cosine"}, "kd")],
)
def test_the_triple_loss_ablations_leave_their_term_out(mlm_teacher, corpus, tmp_path, capsys, recipe, kept, dropped):
    out = tmp_path / recipe
    code, _, err = run_cli(general(mlm_teacher, corpus, out, recipe, "--max-steps", 2, "--eval-every", 2), capsys)
    assert code == 0, err
    history = evals(out)
    assert {f"heldout_{t}" for t in kept} <= set(history[-1]) and f"heldout_{dropped}" not in history[-1]


def test_triple_loss_refuses_teacher_without_head(tiny_bert, corpus, tmp_path, capsys):
    out = tmp_path / "refused"
    code, _, err = run_cli(general(tiny_bert, corpus, out, "distilbert-general", "--max-steps", 2), capsys)
    assert code == 2 and "no masked-LM head" in err and "tinybert-general" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "recipe,terms", [("tinybert-general", {"hidden_mse", "attention"}), ("cosine-hidden", {"cosine", "hidden_mse"})]
)
def test_headless_recipes_run(tiny_bert, corpus, tmp_path, capsys, recipe, terms):
    out = tmp_path / recipe
    code, _, err = run_cli(general(tiny_bert, corpus, out, recipe, "--max-steps", 4, "--eval-every", 2), capsys)
    assert code == 0, err
    logged = {k for line in (out / "log.jsonl").read_text().splitlines() for k in json.loads(line)}
    assert terms <= logged
    assert json.loads((out / "metrics.json").read_text())["dev"]["heldout_loss"] > 0


def test_two_stages_in_one_go(tiny_bert, bert_tokenizer, corpus, tmp_path, capsys):
    from alembert.data.glue import get_task
    from alembert.models.load import load_classifier

    teacher = tmp_path / "task-teacher"
    load_classifier(tiny_bert, get_task("sst2")).save_pretrained(teacher)
    bert_tokenizer.save_pretrained(teacher)
    out = tmp_path / "general"
    code, stdout, err = run_cli(
        general(
            tiny_bert,
            corpus,
            out,
            "tinybert-general",
            "--max-steps",
            3,
            "--then-task",
            "sst2",
            "--task-teacher",
            teacher,
            "--task-epochs",
            1,
            "--set",
            "train.max_steps=3",
        ),
        capsys,
    )
    assert code == 0, err
    task_out = out / "task-sst2"
    metrics = json.loads((task_out / "metrics.json").read_text())
    assert metrics["model"].startswith("checkpoint") and metrics["recipe"] == "kd"
    assert AutoModelForSequenceClassification.from_pretrained(task_out).config.num_hidden_layers == 2


def test_mlm_student_without_head_gets_tied_head(bert_tokenizer, mlm_teacher, corpus, tmp_path, capsys):
    student_dir = save_tiny(tmp_path / "headless", bert_tokenizer, layers=2)
    out = tmp_path / "tied"
    code, _, err = run_cli(
        general(mlm_teacher, corpus, out, "distilbert-general", "--max-steps", 2, "--student", student_dir), capsys
    )
    assert code == 0, err
    student = AutoModelForMaskedLM.from_pretrained(out)
    assert student.get_output_embeddings().weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()


@pytest.mark.cli
def test_raw_text_distillation_prunes_in_rounds_and_an_embedding_run_refuses_rounds(
    tiny_bert, corpus, tmp_path, capsys
):
    """tinybert-general (hidden states through a projection, attention maps of the kept heads) on a student cut
    in two rounds: two stages sharing the steps, the final cut saved; an embedding run prunes once."""
    out = tmp_path / "rounds"
    argv = general(tiny_bert, corpus, out, "tinybert-general", "--max-steps", 4, "--prune-batches", 1)
    argv = [a for a in argv if a not in ("--student-layers", "0,2")]
    code, _, err = run_cli([*argv, "--student-prune", "heads=1,ffn=16,layers=0,2,rounds=2"], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["steps"] for s in metrics["stages"]] == [2, 2] and "in 2 rounds" in metrics["model"]
    c = AutoConfig.from_pretrained(out)
    assert (c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.intermediate_size) == (2, 1, 16, 16)
    embed = general(
        tiny_bert, corpus, tmp_path / "embed", "embed-mse", "--pooling", "mean", "--student-prune", "ffn=16,rounds=2"
    )
    code, _, err = run_cli([a for a in embed if a not in ("--student-layers", "0,2")], capsys)
    assert code == 2 and "an embedding run prunes once" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "embed").exists()
