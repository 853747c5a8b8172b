"""Tests for extractive QA: SQuAD reading and split, windowing, post-processing, metric.

The SQuAD checks read the real dev file in shared/data/squad and compare with the
official counts in shared/data/SOURCES.md; they fail (never skip) when it is missing.
"""

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
from transformers import AutoTokenizer

from alembert.data.squad import (
    FEATURES,
    TEST_ARTICLES,
    load_hub_squad,
    load_squad,
    split_by_article,
    squad_examples,
)
from alembert.errors import AlembertError
from alembert.models.resolve import resolve_model
from alembert.qa.features import (
    prepare_eval_features,
    prepare_train_features,
    tokenize_squad,
)
from alembert.qa.metrics import f1_score, normalize_answer, squad_metrics
from alembert.qa.postprocess import postprocess_predictions

SQUAD = Path(
    os.environ.get("ALEMBERT_SQUAD")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"
)


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))


# ------------------------------------------------------------------------ metric


def test_normalisation():
    assert normalize_answer("  The  Denver-Broncos!! ") == "denverbroncos"
    assert normalize_answer("An apple, a pear and THE end.") == "apple pear and end"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_exact_match_and_f1_by_hand():
    gold = {"q1": ["Denver Broncos"], "q2": ["the Eiffel Tower", "Paris"], "q3": ["a b c d"]}
    preds = {"q1": "denver broncos.", "q2": "Paris!", "q3": "b c x"}
    # q3: normalised "b c d" vs "b c x": 2 shared of 3 and 3 -> P = R = F1 = 2/3
    assert f1_score("b c x", "a b c d") == pytest.approx(2 / 3)
    m = squad_metrics(preds, gold)
    assert m["exact_match"] == pytest.approx(100 * 2 / 3)
    assert m["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3) / 3)


def test_max_over_gold_answers_and_partial_overlap():
    # vs "the big red dog" -> "big red dog": P = 2/2, R = 2/3 -> F1 = 0.8; vs "red": P = 1/2, R = 1
    assert f1_score("red dog", "the big red dog") == pytest.approx(0.8)
    m = squad_metrics({"q": "red dog"}, {"q": ["the big red dog", "red", "cat"]})
    assert m == {"exact_match": 0.0, "f1": pytest.approx(80.0)}
    assert squad_metrics({"q": "red"}, {"q": ["the big red dog", "red"]})["exact_match"] == 100.0


def test_empty_and_missing_predictions():
    assert f1_score("", "Denver") == 0.0
    assert squad_metrics({"a": ""}, {"a": ["x"], "b": ["y"]}) == {"exact_match": 0.0, "f1": 0.0}
    # a missing prediction scores 0, as in the official script
    assert squad_metrics({"a": "x"}, {"a": ["x"], "b": ["y"]})["exact_match"] == 50.0
    rows = [{"id": "a", "answers": {"text": ["x", "X."], "answer_start": [0, 0]}}]
    assert squad_metrics({"a": "x"}, rows)["f1"] == 100.0
    with pytest.raises(AlembertError, match="no reference"):
        squad_metrics({}, {})


# -------------------------------------------------------------------------- data


def test_real_dev_file_counts():
    articles = load_squad(SQUAD)
    assert len(articles) == 48
    assert sum(len(a["paragraphs"]) for a in articles) == 2067
    ds = squad_examples(SQUAD)
    assert len(ds) == 10570 and len(set(ds["id"])) == 10570
    assert ds.column_names == ["id", "title", "context", "question", "answers"]
    row = ds[0]
    start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
    assert row["context"][start : start + len(text)] == text == "Denver Broncos"
    assert len(squad_examples(SQUAD, articles=["Super_Bowl_50"])) == len(
        [t for t in ds["title"] if t == "Super_Bowl_50"]
    )


def test_split_by_article():
    train, test = split_by_article(SQUAD)
    train_titles, test_titles = set(train["title"]), set(test["title"])
    assert len(train_titles) == 38 and len(test_titles) == 10
    assert not train_titles & test_titles
    assert test_titles == set(TEST_ARTICLES)
    assert len(train) + len(test) == 10570 and (len(train), len(test)) == (8877, 1693)
    assert set(train["id"]) | set(test["id"]) == set(squad_examples(SQUAD)["id"])
    again_train, again_test = split_by_article(SQUAD)
    assert again_test["id"] == test["id"] and again_train["id"] == train["id"]
    assert set(split_by_article(SQUAD, seed=1)[1]["title"]) != test_titles
    with pytest.raises(AlembertError, match="between 1 and 47"):
        split_by_article(SQUAD, n_train=48)


def _write(tmp_path, content):
    path = tmp_path / f"squad{len(list(tmp_path.iterdir()))}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_bad_files_are_one_line_errors(tmp_path):
    cases = [
        (tmp_path / "absent.json", "not found"),
        (_write(tmp_path, '{"data": [}'), "invalid JSON"),
        (_write(tmp_path, {"rows": []}), "'data' missing"),
        (_write(tmp_path, {"data": [{"title": "T", "paragraphs": [{"context": "abc"}]}]}), "'qas' missing"),
        (
            _write(
                tmp_path,
                {
                    "data": [
                        {
                            "title": "T",
                            "paragraphs": [
                                {
                                    "context": "abc",
                                    "qas": [
                                        {"id": "1", "question": "q?", "answers": [{"text": "abc", "answer_start": 2}]}
                                    ],
                                }
                            ],
                        }
                    ]
                },
            ),
            "outside its context",
        ),
    ]
    for path, message in cases:
        with pytest.raises(AlembertError, match=message) as err:
            squad_examples(path)
        assert "\n" not in str(err.value)


def test_hub_unreachable(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(AlembertError, match="--train-file"):
        load_hub_squad()


# ---------------------------------------------------------------------- windowing


def _long_example():
    filler = " ".join(f"Sentence number {i} talks about nothing in particular." for i in range(80))
    answer = "the purple elephant of Zanzibar"
    context = f"{filler} The treasure was guarded by {answer}, said the old map. {filler[:200]}"
    return {
        "id": ["long"],
        "title": ["T"],
        "question": ["  Who guarded the treasure?"],
        "context": [context],
        "answers": [{"text": [answer], "answer_start": [context.index(answer)]}],
    }


def _context_tokens(enc, i):
    return [t for t, s in enumerate(enc.sequence_ids(i)) if s == 1]


def test_windows_on_long_context(tok):
    ex = _long_example()
    answer, context = ex["answers"][0]["text"][0], ex["context"][0]
    assert len(tok(context)["input_ids"]) > 384
    feats = prepare_train_features(ex, tok, max_length=384, stride=128)
    n = len(feats["input_ids"])
    assert n >= 3 and all(length <= 384 for length in feats["length"])
    # stride: the last 128 context tokens of a window open the next one
    ctx = [
        [ids[t] for t, tt in enumerate(feats["token_type_ids"][i]) if tt == 1][:-1]
        for i, ids in enumerate(feats["input_ids"])
    ]
    for a, b in zip(ctx, ctx[1:], strict=False):
        assert a[-128:] == b[:128]
    evalf = prepare_eval_features(ex, tok, max_length=384, stride=128)
    assert evalf["example_id"] == ["long"] * n
    hits = 0
    for i in range(n):
        s, e = feats["start_positions"][i], feats["end_positions"][i]
        offsets = evalf["offset_mapping"][i]
        assert offsets[0] is None and offsets[1] is None  # [CLS] and a question token
        inside = offsets[s] is not None and context[offsets[s][0] : offsets[e][1]] == answer
        if s == 0:
            assert e == 0
            window = [o for o in offsets if o is not None]
            assert not (window[0][0] <= context.index(answer) and context.index(answer) + len(answer) <= window[-1][1])
        else:
            assert inside
            hits += 1
    assert 1 <= hits < n


def test_no_token_type_ids(tok):
    # MPNet-style tokenizers make no token_type_ids: windows come from sequence_ids instead
    plain = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"), model_input_names=["input_ids", "attention_mask"])
    ex = _long_example()
    feats = prepare_train_features(ex, plain)
    assert "token_type_ids" not in feats
    assert feats["start_positions"] == prepare_train_features(ex, tok)["start_positions"]


def test_tokenize_squad_cache_and_errors(tok, tmp_path):
    ds = datasets.Dataset.from_dict(_long_example(), features=FEATURES)
    train = tokenize_squad(ds, tok, train=True, cache=tmp_path)
    assert {"start_positions", "end_positions", "length"} <= set(train.column_names)
    evalf = tokenize_squad(ds, tok, train=False, cache=tmp_path)
    assert {"example_id", "offset_mapping"} <= set(evalf.column_names)
    assert len(list((tmp_path / "tokenized").glob("squad-*.arrow"))) == 2
    assert tokenize_squad(ds, tok, train=True, cache=tmp_path)["input_ids"] == train["input_ids"]
    with pytest.raises(AlembertError, match="stride"):
        tokenize_squad(ds, tok, max_length=200, stride=150, cache=tmp_path)


# ----------------------------------------------------------------- post-processing


def test_postprocess_picks_best_valid_span_across_windows():
    context = "alpha beta gamma delta epsilon"
    examples = [{"id": "q", "context": context}]
    q = None
    # window 0: tokens [CLS] q q [SEP] alpha beta gamma [SEP]; window 1: ... gamma delta epsilon
    offsets = [[q, q, q, q, (0, 5), (6, 10), (11, 16), q], [q, q, q, q, (11, 16), (17, 22), (23, 30), q]]
    features = {"example_id": ["q", "q"], "offset_mapping": offsets}
    start = np.full((2, 10), -5.0)  # padded past each window's 8 tokens
    end = np.full((2, 10), -5.0)
    start[0, 1], end[0, 2] = 50, 50  # best pair lies in the question: invalid
    start[0, 6], end[0, 4] = 20, 20  # next best has end < start: invalid
    end[0, 6] = -4  # best valid in window 0: "gamma", score 16
    start[1, 5], end[1, 6] = 10, 10  # best valid in window 1: "delta epsilon", score 20
    end[1, 5] = -1
    start[:, 8:], end[:, 8:] = 99, 99  # padding is ignored
    assert postprocess_predictions(examples, features, start, end) == {"q": "delta epsilon"}
    start[1, 4] = 30  # "gamma delta epsilon" (3 tokens), score 40
    assert postprocess_predictions(examples, features, start, end)["q"] == "gamma delta epsilon"
    got = postprocess_predictions(examples, features, start, end, max_answer_length=2)
    assert got["q"] == "gamma delta"  # score 29
    # window 0 alone, n_best=1: its top pair is invalid, so every pair is tried
    first = {"example_id": ["q"], "offset_mapping": offsets[:1]}
    assert postprocess_predictions(examples, first, list(start), list(end), n_best=1) == {"q": "gamma"}
    assert postprocess_predictions(examples, first, start, end) == {"q": "gamma"}
    assert postprocess_predictions([{"id": "z", "context": "x"}], features, start, end) == {"z": ""}
