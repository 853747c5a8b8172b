"""Tests for the GLUE task registry and the data readers.

The GLUE checks read the real files in shared/data/glue_data and compare with the
official counts in shared/data/SOURCES.md. They fail (never skip) when the data is
missing, because CI always has it.
"""

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from alembert.data.glue import TASKS, get_task, task_names
from alembert.data.readers import (
    default_data_dir,
    load_data_file,
    load_glue_split,
)
from alembert.errors import AlembertError

GLUE = Path(os.environ.get("ALEMBERT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "glue_data")

# (task, split, rows, {class name: count}) from SOURCES.md; STS-B is regression.
OFFICIAL = [
    ("sst2", "train", 67349, {"positive": 37569, "negative": 29780}),
    ("sst2", "dev", 872, {"positive": 444, "negative": 428}),
    ("mrpc", "train", 3668, {"equivalent": 2474, "not_equivalent": 1194}),
    ("mrpc", "dev", 408, {"equivalent": 279, "not_equivalent": 129}),
    ("rte", "train", 2490, {"entailment": 1249, "not_entailment": 1241}),
    ("rte", "dev", 277, {"entailment": 146, "not_entailment": 131}),
    ("cola", "train", 8551, {"acceptable": 6023, "unacceptable": 2528}),
    ("cola", "dev", 1043, {"acceptable": 721, "unacceptable": 322}),
    ("stsb", "train", 5749, None),
    ("stsb", "dev", 1500, None),
    ("qnli", "dev", 5463, {"entailment": 2702, "not_entailment": 2761}),
]


# ------------------------------------------------------------------ task registry


def test_registry_has_all_glue_tasks():
    assert task_names() == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli-mm", "qnli", "rte", "wnli"]
    for task in TASKS.values():
        assert task.main_metric == task.metrics[0]
        if task.is_regression:
            assert task.num_labels == 1 and task.label_names is None
        else:
            assert task.num_labels == len(task.label_values) == len(task.label_names)


@pytest.mark.parametrize(
    "alias, name",
    [
        ("SST-2", "sst2"),
        ("sst-2", "sst2"),
        ("STS-B", "stsb"),
        ("CoLA", "cola"),
        ("mnli_mismatched", "mnli-mm"),
        ("MNLI-MM", "mnli-mm"),
        ("mnli_matched", "mnli"),
        ("glue/qqp", "qqp"),
        ("WNLI", "wnli"),
    ],
)
def test_get_task_aliases(alias, name):
    assert get_task(alias).name == name


def test_unknown_task_lists_valid_names():
    with pytest.raises(AlembertError, match=r"unknown task 'sst3'.*--task.*sst2.*wnli"):
        get_task("sst3")


def test_task_details():
    assert get_task("mnli-mm").dev_file == "dev_mismatched.tsv"
    assert get_task("mnli").dev_file == "dev_matched.tsv"
    assert get_task("mrpc").metrics == ("f1", "accuracy")
    assert get_task("stsb").is_regression and get_task("rte").is_pair
    assert not get_task("sst2").is_pair


# ------------------------------------------------------------------ real GLUE files


@pytest.mark.parametrize("name, split, rows, counts", OFFICIAL, ids=[f"{t}-{s}" for t, s, *_ in OFFICIAL])
def test_glue_split_matches_official_counts(name, split, rows, counts):
    task = get_task(name)
    ds = load_glue_split(task, GLUE, split)
    assert len(ds) == rows
    assert set(ds.column_names) == ({"text_a", "text_b", "label"} if task.is_pair else {"text_a", "label"})
    if counts is None:
        assert ds.features["label"].dtype == "float32"
        assert 0.0 <= min(ds["label"]) and max(ds["label"]) <= 5.0
    else:
        names = ds.features["label"].names
        assert names == list(task.label_names)
        assert {names[i]: n for i, n in Counter(ds["label"]).items()} == counts
    assert all(isinstance(t, str) and t for t in ds["text_a"][:50])


def test_stsb_keeps_stray_quote():
    ds = load_glue_split(get_task("stsb"), GLUE, "dev")
    hits = [t for t in ds["text_a"] if t.startswith('"The grass family')]
    assert len(hits) == 1


def test_mrpc_header_has_no_bom():
    # The BOM must not stick to the first column name ("Quality").
    ds = load_data_file(
        GLUE / "MRPC" / "dev.tsv", label_column="Quality", text_column="#1 String", text_pair_column="#2 String"
    )
    assert len(ds) == 408 and Counter(ds["label"]) == {1: 279, 0: 129}


def test_cola_dev_last_row_read():
    ds = load_glue_split(get_task("cola"), GLUE, "dev")
    assert ds[-1] == {"text_a": "John talked to Bill about himself.", "label": 1}
    assert ds[0]["text_a"] == "The sailors rode the breeze clear of the rocks."


def test_sst2_keeps_trailing_space_and_order():
    ds = load_glue_split(get_task("sst2"), GLUE, "train")
    assert ds[0] == {"text_a": "hide new secretions from the parental units ", "label": 0}
    assert ds[-1]["text_a"].startswith("this new jangle of noise")


@pytest.mark.parametrize(
    "name, file",
    [("sst2", "SST-2/dev.tsv"), ("cola", "CoLA/dev.tsv"), ("mrpc", "MRPC/dev.tsv"), ("stsb", "STS-B/dev.tsv")],
)
def test_glue_file_as_user_file(name, file):
    task = get_task(name)
    expected = load_glue_split(task, GLUE, "dev")
    got = load_data_file(GLUE / file, task=task)
    assert got.to_dict() == expected.to_dict()


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ALEMBERT_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("ALEMBERT_DATA")
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == Path("../shared/data/glue_data")
    (tmp_path / "shared/data/glue_data").mkdir(parents=True)
    assert default_data_dir() == Path("shared/data/glue_data")


# ------------------------------------------------------------------ user files


def test_csv_custom_columns_and_label_names(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('body,other,stars\n"Great, really",x,good\nmeh,y,bad\n"said ""hi""",z,good\n')
    ds = load_data_file(path, text_column="body", label_column="stars", label_names=["bad", "good"])
    assert ds["text_a"] == ["Great, really", "meh", 'said "hi"']
    assert ds["label"] == [1, 0, 1]
    assert ds.features["label"].names == ["bad", "good"]
    assert "text_b" not in ds.column_names


def test_jsonl_pair_with_inferred_labels(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"q": "a?", "p": "b", "y": "yes"}, {"q": "c?", "p": "d", "y": "no"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = load_data_file(path, text_column="q", text_pair_column="p", label_column="y")
    assert ds.to_dict() == {"text_a": ["a?", "c?"], "text_b": ["b", "d"], "label": [1, 0]}
    assert ds.features["label"].names == ["no", "yes"]  # sorted


def test_json_lines_int_labels_and_task_names(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('{"text": "x", "label": 2}\n{"text": "y", "label": 0}\n')
    assert load_data_file(path)["label"] == [2, 0]  # integers are class ids
    assert load_data_file(path).features["label"].names == ["0", "1", "2"]
    # With a task: raw values, names and ids are all accepted.
    path.write_text(
        '{"sentence": "x", "label": "positive"}\n{"sentence": "y", "label": 0}\n{"sentence": "z", "label": "1"}\n'
    )
    assert load_data_file(path, task="sst2")["label"] == [1, 0, 1]


def test_regression_and_unlabelled(tmp_path):
    path = tmp_path / "sts.tsv"
    path.write_text("sentence1\tsentence2\tscore\na\tb\t3.5\nc\td\t0\n")
    ds = load_data_file(path, task="stsb")
    assert ds["label"] == [3.5, 0.0] and ds.features["label"].dtype == "float32"
    plain = tmp_path / "plain.tsv"
    plain.write_text("text\nhello\n")
    assert load_data_file(plain, allow_unlabelled=True).column_names == ["text_a"]


# ------------------------------------------------------------------ bad input


def _error(tmp_path, name, content, **kwargs) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(AlembertError) as info:
        load_data_file(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_column(tmp_path):
    msg = _error(tmp_path, "a.csv", "review,label\nok,1\n")
    assert "'text'" in msg and "columns: review, label" in msg and "--text-column" in msg
    msg = _error(tmp_path, "b.csv", "text,label\nok,1\n", text_pair_column="other")
    assert "'other'" in msg and "--text-pair-column" in msg
    msg = _error(tmp_path, "c.csv", "text,y\nok,1\n")
    assert "'label'" in msg and "--label-column" in msg
    msg = _error(tmp_path, "d.tsv", "sentence1\tlabel\na\tentailment\n", task="rte")
    assert "'sentence2'" in msg and "--text-pair-column" in msg


def test_unknown_label_names_line(tmp_path):
    msg = _error(tmp_path, "a.tsv", "sentence\tlabel\nok\t1\nbad\tmaybe\n", task="sst2")
    assert "line 3" in msg and "'maybe'" in msg and "negative" in msg
    msg = _error(
        tmp_path, "b.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "z"}\n', label_names=["x", "y"]
    )
    assert "line 2" in msg and "'z'" in msg and "--labels" in msg  # issue 20, item 15: the flag that exists


def test_empty_file(tmp_path):
    assert "no data rows" in _error(tmp_path, "a.csv", "")
    assert "no data rows" in _error(tmp_path, "b.tsv", "text\tlabel\n")
    assert "no data rows" in _error(tmp_path, "c.jsonl", "\n")
    assert "no data rows" in _error(tmp_path, "d.tsv", "", task="cola")


def test_undecodable_bytes(tmp_path):
    msg = _error(tmp_path, "a.tsv", b"text\tlabel\nfine\t1\ncaf\xe9\t0\n")
    assert "line 3" in msg and "UTF-8" in msg
    msg = _error(tmp_path, "b.jsonl", b'{"text": "ok", "label": 1}\n{"text": "\xff"}\n')
    assert "line 2" in msg and "UTF-8" in msg


def test_wrong_field_count(tmp_path):
    msg = _error(tmp_path, "a.tsv", "text\tlabel\nok\t1\nstray\ttab\t0\n")
    assert "line 3" in msg and "expected 2" in msg and "found 3" in msg


def test_other_bad_input(tmp_path):
    assert "unsupported extension '.txt'" in _error(tmp_path, "a.txt", "hi\n")
    assert "not a number" in _error(
        tmp_path, "s.tsv", "text\ttext_pair\tscore\na\tb\thigh\n", task="stsb", label_column="score"
    )
    assert "invalid JSON" in _error(tmp_path, "i.jsonl", '[{"text": "a"},\n{"text": "b"}]\n')
    assert "expected a JSON object" in _error(tmp_path, "j.jsonl", '[{"text": "a"}]\n')
    assert "line 2" in _error(tmp_path, "k.jsonl", '{"text": "a", "label": 1}\n{"label": 0}\n')
    assert "unbalanced" in _error(tmp_path, "q.csv", 'text,label\n"abc,1\n' + "x" * 140000)
    with pytest.raises(AlembertError, match="not found; check the path"):
        load_data_file(tmp_path / "nope.csv")


def test_missing_glue_directory(tmp_path):
    with pytest.raises(AlembertError) as info:
        load_glue_split(get_task("sst2"), tmp_path / "nowhere", "train")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "SST-2" / "train.tsv") in message
    assert "--data-dir" in message and "ALEMBERT_DATA" in message
    with pytest.raises(AlembertError, match="unknown split"):
        load_glue_split(get_task("sst2"), GLUE, "test")


def test_huge_texts_are_clipped_before_tokenising_with_the_same_tokens(bert_tokenizer):
    """A 50 MB field used to be tokenised whole (70 s, 7 GB at --max-length 32): texts are cut to
    CHARS_PER_TOKEN x max_length characters first, which keeps the first max_length tokens."""
    from datasets import Dataset

    from alembert.data.tokenize import CHARS_PER_TOKEN, clip, tokenize_dataset

    long = "an unusually long review of a film " * 20_000  # 700,000 characters
    ds = Dataset.from_dict({"text_a": [long, "short"], "label": [1, 0]})
    got = tokenize_dataset(ds, bert_tokenizer, 32)
    want = bert_tokenizer([long, "short"], truncation=True, max_length=32)["input_ids"]
    assert got["input_ids"] == want and len(want[0]) == 32
    assert clip([long, "short"], 32) == [long[: CHARS_PER_TOKEN * 32], "short"] and clip(None, 32) is None
