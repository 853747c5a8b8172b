"""SQuAD fine-tuning, distillation and evaluation end to end through the CLI, on a tiny
random BERT and a handful of real questions of the default article split."""

import contextlib
import io
import json
import shutil

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file
from transformers import AutoModelForQuestionAnswering

from alembert.cli.main import main
from alembert.distill.module import DistillModule
from alembert.distill.recipe import load_recipe
from alembert.losses import hard_label_loss, kd_loss
from alembert.models.student import student_from_teacher
from alembert.training.checkpoint import list_checkpoints

LIMITS = [
    "--task",
    "squad",
    "--max-train-samples",
    24,
    "--max-eval-samples",
    16,
    "--max-length",
    128,
    "--epochs",
    1,
    "--batch-size",
    16,
    "--log-every",
    1,
]


@pytest.fixture(scope="module")
def qa_teacher(tmp_path_factory, tiny_bert):
    """A tiny BERT fine-tuned for QA on 24 questions; (folder, printed output)."""
    out = tmp_path_factory.mktemp("qa-teacher")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [str(a) for a in ["finetune", "--model", tiny_bert, *LIMITS, "--lr", 1e-3, "--output", out, "--overwrite"]]
        )
    assert code == 0
    return out, stdout.getvalue()


def log_keys(folder) -> set[str]:
    return {k for line in (folder / "log.jsonl").read_text().splitlines() for k in json.loads(line)}


@pytest.mark.cli
def test_finetune_squad_saves_a_qa_model(qa_teacher):
    out, printed = qa_teacher
    assert "default SQuAD v1.1 dev split" in printed and "max length 128" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "squad" and metrics["main_metric"] == "f1"
    assert set(metrics["dev"]) == {"exact_match", "f1"}
    assert metrics["train_examples"] == 24 and metrics["dev_examples"] == 16
    assert metrics["details"]["train_windows"] >= 24 and metrics["details"]["max_length"] == 128
    assert "task" in log_keys(out)
    model = AutoModelForQuestionAnswering.from_pretrained(out)
    assert model.config.num_hidden_layers == 4
    assert "max_length: 128" in (out / "finetune_config.yaml").read_text()


@pytest.mark.cli
def test_evaluate_reproduces_the_dev_f1(qa_teacher, capsys):
    out, _ = qa_teacher
    code, stdout, err = run_cli(
        ["evaluate", out, "--task", "squad", "--max-eval-samples", 16, "--max-length", 128], capsys
    )
    assert code == 0, err
    scores = json.loads(stdout.strip().splitlines()[-1])
    best = json.loads((out / "metrics.json").read_text())["dev"]
    assert scores["f1"] == pytest.approx(best["f1"], abs=1e-9)
    assert scores["exact_match"] == pytest.approx(best["exact_match"], abs=1e-9)
    assert json.loads((out / "eval_results.json").read_text())["examples"] == 16


@pytest.mark.parametrize("recipe,terms", [("kd", {"kd", "ce"}), ("pkd-skip", {"kd", "ce", "pkd"})])
@pytest.mark.cli
def test_distill_squad(recipe, terms, qa_teacher, tmp_path, capsys):
    teacher, _ = qa_teacher
    out = tmp_path / recipe
    code, stdout, err = run_cli(
        ["distill", "--teacher", teacher, "--recipe", recipe, *LIMITS, "--student-layers", "0,2", "--output", out],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == recipe and metrics["parameters"] < metrics["teacher_parameters"]
    teacher_dev = json.loads((teacher / "metrics.json").read_text())["dev"]
    assert metrics["teacher_dev"]["f1"] == pytest.approx(teacher_dev["f1"], abs=1e-9)
    assert set(metrics["dev"]) == {"exact_match", "f1"} and "retention" in metrics
    assert terms <= log_keys(out)
    assert AutoModelForQuestionAnswering.from_pretrained(out).config.num_hidden_layers == 2
    card = (out / "README.md").read_text()
    assert "AutoModelForQuestionAnswering" in card and "question-answering" in card
    assert "max_length: 128" in (out / "distill_config.yaml").read_text()


@pytest.mark.cli
def test_distill_squad_prunes_in_rounds(qa_teacher, tmp_path, capsys):
    """--prune-rounds on the QA command: its stages are the rounds, the saved model the final cut."""
    teacher, _ = qa_teacher
    out = tmp_path / "rounds"
    argv = ["distill", "--teacher", teacher, "--recipe", "kd", *LIMITS, "--epochs", 2, "--output", out]
    code, _, err = run_cli(
        [*argv, "--student-prune", "heads=1,ffn=16,layers=0,2,rounds=2", "--prune-batches", 1], capsys
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    steps = [s["steps"] for s in metrics["stages"]]
    assert len(steps) == 2 and abs(steps[0] - steps[1]) <= 1 and "in 2 rounds" in metrics["model"]
    c = AutoModelForQuestionAnswering.from_pretrained(out).config
    assert (c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (2, 1, 16)


@pytest.mark.cli
def test_distill_needs_a_qa_teacher(tiny_bert, tmp_path, capsys):
    code, _, err = run_cli(
        ["distill", "--teacher", tiny_bert, "--recipe", "kd", *LIMITS, "--output", tmp_path / "x"], capsys
    )
    assert code != 0 and "not a question-answering model" in err


@pytest.mark.cli
def test_distill_squad_refuses_transfer_text(tiny_bert, tmp_path, capsys):
    out = tmp_path / "x"
    code, _, err = run_cli(["distill", "--teacher", tiny_bert, *LIMITS, "--transfer-size", 50, "--output", out], capsys)
    assert code != 0 and "takes no transfer text" in err and err.count("\n") == 1 and not out.exists()


@pytest.mark.cli
def test_resume_after_a_lost_checkpoint_rebuilds_it_exactly(qa_teacher, tmp_path, capsys):
    teacher, _ = qa_teacher
    out = tmp_path / "resume"
    args = ["finetune", "--model", teacher, *LIMITS, "--save-every", 1, "--output", out]
    assert run_cli(args, capsys)[0] == 0
    last = list_checkpoints(out)[-1]
    assert last.name == "stage0-step0000003"
    before = load_file(str(last / "model.safetensors"))
    shutil.rmtree(last)  # as if killed during step 3: resume from the step-2 checkpoint
    code, _, err = run_cli([*args, "--resume"], capsys)
    assert code == 0, err
    after = load_file(str(last / "model.safetensors"))
    assert max((before[k] - after[k]).abs().max().item() for k in before) <= 1e-6
    assert json.loads((out / "metrics.json").read_text())["steps"] == 3


def test_qa_kd_and_ce_average_start_and_end(tiny_bert, bert_tokenizer):
    teacher = AutoModelForQuestionAnswering.from_pretrained(tiny_bert).eval()
    student = student_from_teacher(teacher, [0, 2]).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # make the student differ from the teacher's layers
        for p in student.qa_outputs.parameters():
            p.add_(0.5 * torch.randn_like(p))
    batch = dict(
        bert_tokenizer(
            ["Who wrote it?", "When?"],
            ["Ann wrote the book in 1990.", "In 1990, a year."],
            padding=True,
            return_tensors="pt",
        )
    )
    batch["start_positions"], batch["end_positions"] = torch.tensor([5, 7]), torch.tensor([5, 8])
    stage = load_recipe("kd").stages[0]  # 0.5 kd (T=2) + 0.5 ce
    total, terms = DistillModule(student, teacher, stage)(batch)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        s, t = student(**inputs), teacher(**inputs)
    kd = (kd_loss(s.start_logits, t.start_logits, 2.0) + kd_loss(s.end_logits, t.end_logits, 2.0)) / 2
    ce = (
        hard_label_loss(s.start_logits, batch["start_positions"])
        + hard_label_loss(s.end_logits, batch["end_positions"])
    ) / 2
    assert terms["kd"].item() == pytest.approx(kd.item(), rel=1e-5)
    assert terms["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert total.item() == pytest.approx(0.5 * kd.item() + 0.5 * ce.item(), rel=1e-5)
    assert kd.item() > 0


@pytest.mark.cli
def test_bench_scores_and_times_qa_models(qa_teacher, tmp_path, capsys):
    from alembert.models.load import load_tokenizer

    out, _ = qa_teacher
    student = tmp_path / "student"
    student_from_teacher(AutoModelForQuestionAnswering.from_pretrained(out), [0, 2]).save_pretrained(student)
    load_tokenizer(out).save_pretrained(student)
    code, stdout, err = run_cli(
        [
            "bench",
            out,
            student,
            "--task",
            "squad",
            "--max-eval-samples",
            8,
            "--repeats",
            1,
            "--warmup",
            0,
            "--threads",
            1,
            "--output",
            tmp_path / "bench",
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads((tmp_path / "bench" / "bench.json").read_text())
    # seq_len: the teacher's own training length (--max-length 128, saved in its config.json), not SQuAD's 384
    assert (
        result["task"] == "squad"
        and result["metric"] == "f1"
        and result["seq_len"] == 128
        and result["dev_examples"] == 8
    )
    teacher_row, student_row = result["models"]
    assert set(teacher_row["dev_metrics"]) == {"exact_match", "f1"} and teacher_row["retention_pct"] == 100
    assert student_row["params"] < teacher_row["params"] and student_row["throughput_seq_s"] > 0
    code, _, err = run_cli(["bench", tmp_path / "nowhere", "--task", "squad"], capsys)
    assert code == 2 and "Traceback" not in err
