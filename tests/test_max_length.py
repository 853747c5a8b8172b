"""Issue 28, item 5: ``max_length`` has one owner. The config leaves it unset; each task kind
resolves it once (``TaskKind.default_max_length``: the length the model was trained with, else
the kind's own: classification 128, extractive QA 384, embeddings the model's ``max_seq_length``
or 256), and ``eval_results.json``, ``metrics.json`` and the model card record the length used."""

import json
import shutil

import pytest
from conftest import run_cli
from test_embedding import st_folder

from alembert.config.schema import CorpusConfig, DataConfig, EvaluateConfig
from alembert.tasks import task_kind

CLASSIFICATION, QA, EMBEDDING = task_kind("sst2"), task_kind("squad"), task_kind("stsb-zeroshot")


def with_record(src, dst, record: dict):
    """A copy of the model folder ``src`` whose config.json carries the preprocessing record ``record``."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**config, "alembert_preprocessing": record}))
    return dst


def embedding_folder(path, encoder, max_seq_length: int):
    """A sentence-transformers folder (written by sentence-transformers) declaring ``max_seq_length``."""
    st_folder(path, encoder, "mean", True)
    declared = next(path.rglob("sentence_bert_config.json"))
    declared.write_text(json.dumps({**json.loads(declared.read_text()), "max_seq_length": max_seq_length}))
    return path


def long_qa_model(path, tokenizer):
    """A tiny QA model whose position table holds SQuAD's 384-token windows (conftest's tiny models stop at 256)."""
    from transformers import AutoModelForQuestionAnswering, BertConfig

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_the_config_leaves_the_length_to_the_kind():
    assert DataConfig().max_length is None and CorpusConfig().max_length is None
    assert DataConfig(max_length=64).max_length == 64


def test_each_kind_has_its_default_and_reads_the_models_own(tmp_path, tiny_bert):
    assert (CLASSIFICATION.default_max_length(tiny_bert), QA.default_max_length(tiny_bert)) == (128, 384)
    assert EMBEDDING.default_max_length(tiny_bert) == 256  # a plain encoder declares no max_seq_length
    short = with_record(tiny_bert, tmp_path / "short", {"task_kind": "classification", "max_length": 64})
    assert CLASSIFICATION.default_max_length(short) == 64
    assert QA.default_max_length(short) == 384  # another kind's record is not this kind's length
    windows = with_record(tiny_bert, tmp_path / "qa", {"task_kind": "extractive-qa", "max_length": 256, "stride": 85})
    assert QA.default_max_length(windows) == 256 and CLASSIFICATION.default_max_length(windows) == 128
    assert EMBEDDING.default_max_length(embedding_folder(tmp_path / "st", tiny_bert, 48)) == 48
    assert CLASSIFICATION.default_max_length(tmp_path / "no-such-model") == 128  # the run that loads it says why


def test_a_flag_wins_and_resolving_is_done_once(tmp_path, tiny_bert):
    short = with_record(tiny_bert, tmp_path / "short", {"task_kind": "classification", "max_length": 64})
    given = EvaluateConfig(model=str(short), data={"task": "sst2", "max_length": 32})
    assert CLASSIFICATION.resolve_max_length(given, short) is given
    resolved = CLASSIFICATION.resolve_max_length(EvaluateConfig(model=str(short), data={"task": "sst2"}), short)
    assert resolved.data.max_length == 64 and resolved.data.task == "sst2"
    assert QA.resolve_max_length(resolved, short).data.max_length == 64  # already resolved: left alone


@pytest.mark.cli
def test_a_qa_model_evaluated_without_a_flag_records_384(tmp_path, bert_tokenizer, capsys):
    model = long_qa_model(tmp_path / "qa", bert_tokenizer)
    code, _, err = run_cli(
        ["evaluate", model, "--task", "squad", "--max-eval-samples", 4, "--output", tmp_path / "ev"], capsys
    )
    assert code == 0, err
    results = json.loads((tmp_path / "ev" / "eval_results.json").read_text())
    assert results["max_length"] == 384 and results["examples"] == 4


@pytest.mark.cli
def test_an_embedding_model_records_its_max_seq_length(tmp_path, tiny_bert, capsys):
    model = embedding_folder(tmp_path / "st", tiny_bert, 48)
    cmd = ["evaluate", model, "--task", "stsb-zeroshot", "--max-eval-samples", 8, "--output", tmp_path / "ev"]
    code, stdout, err = run_cli(cmd, capsys)
    assert code == 0, err
    assert "max length 48" in stdout
    assert json.loads((tmp_path / "ev" / "eval_results.json").read_text())["max_length"] == 48
    code, _, err = run_cli([*cmd, "--max-length", 16], capsys)  # a flag overrides, and is what is recorded
    assert code == 0, err
    assert json.loads((tmp_path / "ev" / "eval_results.json").read_text())["max_length"] == 16


@pytest.mark.cli
def test_a_classifier_trained_at_64_is_distilled_and_recorded_at_64(tiny_teacher, tmp_path, capsys):
    """No --max-length after the fine-tuning: the distillation takes the teacher's 64, and every
    record of the student (its config, metrics.json, its card, its saved config) says 64."""
    small = ["--task", "sst2", "--max-train-samples", 32, "--max-eval-samples", 16, "--epochs", 1, "--batch-size", 16]
    teacher = tmp_path / "teacher"
    code, _, err = run_cli(
        ["finetune", "--model", tiny_teacher, *small, "--max-length", 64, "--output", teacher], capsys
    )
    assert code == 0, err
    assert json.loads((teacher / "metrics.json").read_text())["details"]["max_length"] == 64
    student = tmp_path / "student"
    code, _, err = run_cli(
        [
            "distill",
            "--transfer",
            "none",
            "--teacher",
            teacher,
            "--recipe",
            "kd",
            "--student-layers",
            "0,2",
            *small,
            "--output",
            student,
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((student / "config.json").read_text())["alembert_preprocessing"]["max_length"] == 64
    assert json.loads((student / "metrics.json").read_text())["details"]["max_length"] == 64
    assert "Max length: 64 tokens" in (student / "README.md").read_text()
    assert "max_length: 64" in (student / "distill_config.yaml").read_text()


@pytest.mark.cli
def test_an_embedding_student_records_the_teachers_length(tmp_path, tiny_bert, capsys):
    teacher = embedding_folder(tmp_path / "teacher", tiny_bert, 48)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"a short sentence number {i}" for i in range(32)))
    out = tmp_path / "student"
    cmd = ["distill-general", "--teacher", teacher, "--recipe", "embed-mse", "--corpus", texts, "--output", out]
    code, _, err = run_cli(
        [*cmd, "--student-layers", "0", "--batch-size", 8, "--max-steps", 2, "--eval-tasks", "stsb-zeroshot"], capsys
    )
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["details"]["max_length"] == 48
    assert "Max length: 48 tokens" in (out / "README.md").read_text()
