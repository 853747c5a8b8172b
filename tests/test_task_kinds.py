"""Task kinds: every --task name reaches its kind, an unknown one is a one-line error naming the
known ones, and a kind defined in a new file (tests/helpers/toy_kind.py) is reached by the
commands with no edit to them."""

from __future__ import annotations

import importlib.util
import json
import pkgutil
from pathlib import Path

import pytest
from conftest import run_cli

import alembert.tasks
from alembert.data.glue import task_names
from alembert.errors import AlembertError
from alembert.tasks import KINDS, task_kind

TOY = Path(__file__).parent / "helpers" / "toy_kind.py"


@pytest.mark.parametrize(
    "task, kind",
    [
        *[(name, "classification") for name in task_names()],
        (None, "classification"),
        ("custom", "classification"),
        ("SST-2", "classification"),
        ("mnli_mismatched", "classification"),
        ("squad", "extractive-qa"),
        (" SQuAD", "extractive-qa"),
        ("stsb-zeroshot", "embedding"),
        ("squad-retrieval", "embedding"),
    ],
)
def test_every_task_name_maps_to_its_kind(task, kind):
    assert task_kind(task).name == kind


def test_kinds_declare_model_class_pipeline_tag_and_metric():
    got = {
        k: (c.model_class, c.pipeline_tag)
        for k, c in KINDS.items()
        if k in ("classification", "extractive-qa", "embedding")
    }
    assert got == {
        "classification": ("AutoModelForSequenceClassification", "text-classification"),
        "extractive-qa": ("AutoModelForQuestionAnswering", "question-answering"),
        "embedding": ("SentenceTransformer", "sentence-similarity"),
    }
    tasks = ("mrpc", "cola", "stsb", "squad", "stsb-zeroshot", "squad-retrieval")
    assert [task_kind(t).main_metric(t) for t in tasks] == ["f1", "mcc", "pearson", "f1", "spearman", "mrr@10"]


def test_unknown_task_is_one_line_listing_the_known_ones():
    with pytest.raises(AlembertError) as info:
        task_kind("sst3")
    message = str(info.value)
    assert "\n" not in message and message.startswith("unknown task 'sst3'")
    for name in (*task_names(), "custom", "squad", "stsb-zeroshot", "squad-retrieval"):
        assert name in message


@pytest.mark.cli
def test_unknown_task_refused_by_the_commands_before_any_output(tiny_bert, tmp_path, capsys):
    code, _, err = run_cli(["finetune", "--model", tiny_bert, "--task", "sst3", "--output", tmp_path / "o"], capsys)
    assert code == 2 and "unknown task 'sst3'" in err and "squad" in err and not (tmp_path / "o").exists()


@pytest.mark.cli
def test_a_kind_that_cannot_train_names_the_command_that_can(tiny_bert, tmp_path, capsys):
    args = ["finetune", "--model", tiny_bert, "--task", "stsb-zeroshot", "--output", tmp_path / "o"]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "distill-general" in err and not (tmp_path / "o").exists()


def test_every_module_of_the_package_registers_a_kind():
    """Discovery is by file: each module of alembert/tasks (but base) defines at least one registered kind."""
    modules = {f"alembert.tasks.{m.name}" for m in pkgutil.iter_modules(alembert.tasks.__path__) if m.name != "base"}
    assert modules == {"alembert.tasks.classification", "alembert.tasks.extractive_qa", "alembert.tasks.embedding"}
    assert modules <= {cls.__module__ for cls in KINDS.values()}


@pytest.fixture
def toy_kind():
    """Import tests/helpers/toy_kind.py (defining its class registers it); unregister it afterwards."""
    spec = importlib.util.spec_from_file_location("toy_kind", TOY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert KINDS["vocab-coverage"] is module.VocabCoverage
    yield module.VocabCoverage
    KINDS.pop("vocab-coverage")


def _coverage(tokenizer, words: list[str]) -> float:
    """Independent of the kind: an uncased WordPiece keeps a plain lower-case word whole iff it is in the vocabulary."""
    vocab = tokenizer.get_vocab()
    return sum(w in vocab for w in words) / len(words)


@pytest.mark.cli
def test_a_new_kind_is_new_files_only(toy_kind, tiny_bert, bert_tokenizer, tmp_path, capsys):
    words = "the cat sat on the mat with a quokka and zyzzogeton".split()
    dev = tmp_path / "dev.txt"
    dev.write_text(" ".join(words))
    (tmp_path / "train.txt").write_text("one two three")
    expected = _coverage(bert_tokenizer, words)
    assert 0 < expected < 1  # the file holds both kinds of word

    assert task_kind("vocab-coverage").name == "vocab-coverage"
    args = ["evaluate", tiny_bert, "--task", "vocab-coverage", "--dev-file", dev, "--output", tmp_path / "ev"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "vocab-coverage" in out
    written = json.loads((tmp_path / "ev" / "eval_results.json").read_text())
    assert written["task"] == "vocab-coverage" and written["examples"] == len(words)
    assert written["coverage"] == pytest.approx(expected)

    args = [
        "finetune",
        "--model",
        tiny_bert,
        "--task",
        "vocab-coverage",
        "--train-file",
        tmp_path / "train.txt",
        "--dev-file",
        dev,
        "--output",
        tmp_path / "ft",
    ]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and f"saved to {tmp_path / 'ft'}" in out
    summary = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert summary["train_examples"] == 3 and summary["dev"]["coverage"] == pytest.approx(expected)

    args = ["distill", "--teacher", tiny_bert, "--task", "vocab-coverage", "--output", tmp_path / "d"]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "alembert distill does not take --task vocab-coverage" in err and not (tmp_path / "d").exists()
    code, _, err = run_cli(["bench", tiny_bert, "--task", "vocab-coverage", "--output", tmp_path / "b"], capsys)
    assert code == 2 and "alembert bench does not take --task vocab-coverage" in err and not (tmp_path / "b").exists()


def test_classification_kind_data_and_evaluation_are_the_existing_ones(tiny_teacher, bert_tokenizer):
    """load_split + featurise + evaluate_model of the kind equal the data/ and classification/ calls they stand for."""
    from alembert.classification.evaluate import evaluate_model
    from alembert.config.schema import DataConfig
    from alembert.data.glue import get_task
    from alembert.data.load import load_split
    from alembert.data.tokenize import tokenize_dataset

    kind, data = task_kind("sst2"), DataConfig(task="sst2", max_eval_samples=24, max_length=64)
    dev = kind.featurise(kind.load_split(data, "dev"), bert_tokenizer, data)
    direct = tokenize_dataset(load_split(data, get_task("sst2"), "dev"), bert_tokenizer, 64)
    assert dev["input_ids"] == direct["input_ids"] and len(dev) == 24
    model = kind.load_model(tiny_teacher, get_task("sst2"))
    assert kind.evaluate_model(model, bert_tokenizer, data, 8) == evaluate_model(
        model, bert_tokenizer, get_task("sst2"), direct, 8
    )


def test_embedding_kind_has_a_dev_set_only():
    from alembert.config.schema import DataConfig

    with pytest.raises(AlembertError, match="dev set only, no train set"):
        task_kind("stsb-zeroshot").load_split(DataConfig(task="stsb-zeroshot"), "train")
