"""Teacher and student with different tokenizers (MPNet-style teacher, BERT student), and transfer sets."""

import json

import pytest
import torch
from conftest import run_cli
from transformers import AutoConfig, AutoModelForSequenceClassification, MPNetTokenizer


@pytest.fixture(scope="module")
def mpnet_teacher(tmp_path_factory, bert_tokenizer):
    """A tiny random MPNet classifier with MPNet's vocabulary (BERT's + 5 specials)."""
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
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def distill(teacher, student, out, recipe, *extra):
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
        "--output",
        out,
        *extra,
    ]


@pytest.mark.cli
def test_different_vocabularies_need_the_flag(mpnet_teacher, tiny_bert, tmp_path, capsys):
    code, _, err = run_cli(distill(mpnet_teacher, tiny_bert, tmp_path / "o", "kd"), capsys)
    assert code == 2 and "different vocabularies" in err and "--cross-tokenizer strict" in err


@pytest.mark.parametrize(
    "recipe,mode,term",
    [
        ("kd", "strict", "kd"),
        ("distilbert", "strict", "cosine"),
        ("pkd-skip", "cls", "pkd"),
        ("tinybert", "strict", "attention"),
    ],
)
@pytest.mark.cli
def test_cross_family_distillation_runs(mpnet_teacher, tiny_bert, tmp_path, capsys, recipe, mode, term):
    out = tmp_path / recipe
    code, _, err = run_cli(distill(mpnet_teacher, tiny_bert, out, recipe, "--cross-tokenizer", mode), capsys)
    assert code == 0, err
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.model_type == "bert" and student.config.num_hidden_layers == 2
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any(term in r and r[term] > 0 for r in records if "step" in r)


@pytest.mark.cli
def test_transfer_set_without_labels(tiny_bert, tmp_path, capsys):
    from alembert.data.glue import get_task
    from alembert.models.load import load_classifier, load_tokenizer

    teacher = tmp_path / "teacher"
    load_classifier(tiny_bert, get_task("sst2")).save_pretrained(teacher)
    load_tokenizer(tiny_bert).save_pretrained(teacher)
    transfer = tmp_path / "unlabelled.txt"
    transfer.write_text("\n".join(f"an unlabelled sentence number {i} about a film" for i in range(24)))
    out = tmp_path / "student"
    code, _, err = run_cli(
        [
            "distill",
            "--teacher",
            teacher,
            "--recipe",
            "kd",
            "--task",
            "sst2",
            "--student-layers",
            "0,2",
            "--max-train-samples",
            16,
            "--max-eval-samples",
            8,
            "--transfer",
            transfer,
            "--transfer-fill",
            0,  # the file alone: no filling from the other training rows
            "--epochs",
            1,
            "--batch-size",
            8,
            "--log-every",
            1,
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 16 + 24
    assert metrics["details"]["transfer"]["sources"] == {f"from {transfer}": 24}
    records = [
        json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"step"' in line and '"kd"' in line
    ]
    assert records and all(r["kd"] >= 0 and r["ce"] >= 0 for r in records)


def test_a_batch_of_transfer_rows_only_gives_zero_ce_not_nan():
    from alembert.losses import hard_label_loss

    logits = torch.randn(4, 2, requires_grad=True)
    loss = hard_label_loss(logits, torch.full((4,), -100))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and not logits.grad.any()


@pytest.mark.cli
def test_the_student_alone_takes_a_teacher_of_another_vocabulary(mpnet_teacher, tiny_bert, tmp_path, capsys):
    """--recipe ce reads no teacher output: no --cross-tokenizer needed (the teacher only scores its own dev set)."""
    out = tmp_path / "ce"
    code, _, err = run_cli(distill(mpnet_teacher, tiny_bert, out, "ce"), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == "ce" and metrics["teacher_dev"]["accuracy"] >= 0 and metrics["dev"]["accuracy"] >= 0
    assert AutoModelForSequenceClassification.from_pretrained(out).config.vocab_size == 30522  # the student's own
