"""Asymmetric search (issue 29, item 1): the questions embedded by the student, the paragraphs by
another model (the teacher), on a hand-made SQuAD file; the space check; a static student's saved
PCA mapping its teacher's documents; the documents cache; bad input as one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli, save_tiny

from alembert.embedding import evaluate as ev
from alembert.embedding.cache import encode
from alembert.embedding.metrics import retrieval_metrics
from alembert.errors import AlembertError
from alembert.models.sentence import load_embedding_model

PARAGRAPHS = [
    "The violin is a wooden string instrument with four strings tuned in perfect fifths.",
    "Stock markets fell sharply on Monday after the central bank raised interest rates.",
    "The cat is a small domesticated carnivorous mammal kept as a pet.",
    "Heavy rain and strong winds are expected across the north this weekend.",
]
QUESTIONS = [
    ("How many strings does a violin have?", 0),
    ("Why did stock markets fall on Monday?", 1),
    ("What kind of animal is a cat?", 2),
    ("What weather is expected this weekend?", 3),
    ("What is the violin made of?", 0),
]


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
    paragraphs = [
        {
            "context": c,
            "qas": [
                {
                    "id": f"q{i}-{j}",
                    "question": q,
                    "answers": [{"text": c.split()[1], "answer_start": c.index(" ") + 1}],
                }
                for j, (q, gold) in enumerate(QUESTIONS)
                if gold == i
            ],
        }
        for i, c in enumerate(PARAGRAPHS)
    ]
    path = tmp_path_factory.mktemp("squad") / "hand-made.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "Things", "paragraphs": paragraphs}]}))
    return path


def st(path, encoder):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as m

    t = m.Transformer(str(encoder))
    SentenceTransformer(modules=[t, m.Pooling(t.get_embedding_dimension(), "mean"), m.Normalize()], device="cpu").save(
        str(path)
    )
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory, bert_tokenizer):
    base = tmp_path_factory.mktemp("asym")
    return {
        "teacher": st(base / "teacher", save_tiny(base / "enc-t", bert_tokenizer, hidden=32, seed=0)),
        "other": st(base / "other", save_tiny(base / "enc-o", bert_tokenizer, hidden=32, seed=5)),
        "narrow": st(base / "narrow", save_tiny(base / "enc-n", bert_tokenizer, hidden=16, seed=0)),
    }


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_documents_by_the_same_model_is_the_symmetric_search(folders, squad_file):
    model, tok = load_embedding_model(folders["teacher"])
    sym = ev.squad_retrieval(model, tok, 64, questions="all", path=squad_file)
    asym = ev.squad_retrieval(model, tok, 64, questions="all", path=squad_file, documents=(model, tok))
    assert asym.pop("space_cosine") == pytest.approx(1.0, abs=1e-5)
    assert asym == pytest.approx(sym)


def test_asymmetric_metrics_are_the_student_questions_against_the_teacher_paragraphs(folders, squad_file, monkeypatch):
    """Two models whose spaces differ, the space check lowered so the search runs: the figures are those
    of an independent numpy search over the two sides' embeddings."""
    monkeypatch.setattr(ev, "SPACE_COSINE", -1.0)
    student, stok = load_embedding_model(folders["other"])
    teacher, ttok = load_embedding_model(folders["teacher"])
    got = ev.squad_retrieval(student, stok, 64, questions="all", path=squad_file, documents=(teacher, ttok))
    q = unit(encode(student, stok, [q for q, _ in QUESTIONS], 64))
    p = unit(encode(teacher, ttok, PARAGRAPHS, 64))
    want = retrieval_metrics(q @ p.T, np.array([g for _, g in QUESTIONS]))
    assert {k: got[k] for k in want} == pytest.approx(want)
    assert got["space_cosine"] == pytest.approx(
        float((q * unit(encode(teacher, ttok, [q for q, _ in QUESTIONS], 64))).sum(1).mean()), abs=1e-5
    )


def test_a_static_student_maps_its_teachers_documents_with_its_saved_pca(folders, squad_file, monkeypatch, tmp_path):
    from alembert.models.static import StaticEmbeddingModel, load_static_model

    monkeypatch.setattr(ev, "SPACE_COSINE", -1.0)
    teacher, ttok = load_embedding_model(folders["teacher"])
    torch.manual_seed(0)
    static = StaticEmbeddingModel(torch.randn(len(ttok), 8), None, ttok.all_special_ids)
    static.teacher_map = (torch.randn(32), torch.linalg.qr(torch.randn(32, 8))[0].T.contiguous())
    static.save(tmp_path / "static", ttok)
    static, stok = load_static_model(tmp_path / "static")
    got = ev.squad_retrieval(static, stok, 64, questions="all", path=squad_file, documents=(teacher, ttok))
    mean, comps = (t.numpy() for t in static.teacher_map)
    p = unit((encode(teacher, ttok, PARAGRAPHS, 64) - mean) @ comps.T)
    q = unit(encode(static, stok, [q for q, _ in QUESTIONS], 64))
    want = retrieval_metrics(q @ p.T, np.array([g for _, g in QUESTIONS]))
    assert {k: got[k] for k in want} == pytest.approx(want)
    narrow, ntok = load_embedding_model(folders["narrow"])
    with pytest.raises(AlembertError, match="PCA maps 32-dimensional"):
        ev.squad_retrieval(static, stok, 64, questions="all", path=squad_file, documents=(narrow, ntok))


def test_models_that_do_not_share_a_space_are_refused_before_the_documents(folders, squad_file, monkeypatch):
    teacher, ttok = load_embedding_model(folders["teacher"])
    other, otok = load_embedding_model(folders["other"])
    narrow, ntok = load_embedding_model(folders["narrow"])
    seen = []
    monkeypatch.setattr(ev, "cached_documents", lambda *a, **k: seen.append(a))
    with pytest.raises(AlembertError, match="do not share a space") as exc:
        ev.squad_retrieval(other, otok, 64, questions="all", path=squad_file, documents=(teacher, ttok))
    assert "\n" not in str(exc.value)
    with pytest.raises(AlembertError, match="32-dimensional embeddings, the query model 16"):
        ev.squad_retrieval(narrow, ntok, 64, questions="all", path=squad_file, documents=(teacher, ttok))
    assert seen == []  # no document was embedded


def test_the_teachers_documents_are_embedded_once(folders, squad_file, monkeypatch):
    teacher, ttok = load_embedding_model(folders["teacher"])
    first = ev.cached_documents(teacher, ttok, PARAGRAPHS, 64, 8)
    monkeypatch.setattr(ev, "encode", lambda *a, **k: pytest.fail("encoded again"))
    assert np.array_equal(ev.cached_documents(teacher, ttok, PARAGRAPHS, 64, 8), first)
    calls = []
    monkeypatch.setattr(ev, "encode", lambda m, t, texts, *a, **k: calls.append(texts) or np.zeros((len(texts), 32)))
    ev.cached_documents(teacher, ttok, PARAGRAPHS[:3], 64, 8)  # other texts, another entry
    ev.cached_documents(teacher, ttok, PARAGRAPHS, 32, 8)  # another max length, another entry
    assert calls == [PARAGRAPHS[:3], PARAGRAPHS]


def test_a_teacher_loaded_by_the_runtime_shares_its_cached_documents(folders, monkeypatch):
    """The command loads the teacher through the PyTorch runtime (a wrapper around the same weights),
    a distill or peer run loads it directly: both must find the one set of cached paragraphs."""
    from alembert.runtimes.pytorch import PyTorchRuntime

    teacher, ttok = load_embedding_model(folders["teacher"])
    wrapped, wtok = PyTorchRuntime().load_embedding(folders["teacher"])
    first = ev.cached_documents(teacher, ttok, PARAGRAPHS[:2], 48, 8)
    monkeypatch.setattr(ev, "encode", lambda *a, **k: pytest.fail("encoded again"))
    assert np.array_equal(ev.cached_documents(wrapped, wtok, PARAGRAPHS[:2], 48, 8), first)


@pytest.mark.cli
def test_the_command(folders, capsys, tiny_teacher):
    """On the real SQuAD dev file (the held-out articles' questions)."""
    t = folders["teacher"]
    code, out, err = run_cli(
        ["evaluate", t, "--task", "squad-retrieval", "--documents-by", t, "--max-length", 32], capsys
    )
    assert code == 0, err
    assert "(queries) against" in out and json.loads(out.strip().splitlines()[-1])["space_cosine"] == pytest.approx(1)
    code, _, err = run_cli(["evaluate", t, "--task", "stsb-zeroshot", "--documents-by", t], capsys)
    assert code == 2 and "--documents-by is for --task squad-retrieval" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["evaluate", tiny_teacher, "--task", "sst2", "--documents-by", t], capsys)
    assert code == 2 and "--documents-by is not an option of classification" in err, err
    code, _, err = run_cli(["evaluate", folders["other"], "--task", "squad-retrieval", "--documents-by", t], capsys)
    assert code == 2 and "do not share a space" in err and len(err.strip().splitlines()) == 1


@pytest.mark.cli
def test_bench_scores_asymmetric_search_and_times_the_queries(folders, capsys, tmp_path):
    """bench --documents-by: every model's questions against the paragraphs the documents model embedded
    once (the figures evaluate --documents-by gives), timed on the questions alone, and said so."""
    t, narrow = folders["teacher"], folders["narrow"]
    out = tmp_path / "bench"
    argv = ["bench", t, t, "--task", "squad-retrieval", "--documents-by", t, "--max-eval-samples", 8]
    code, _, err = run_cli([*argv, "--repeats", 1, "--threads", 1, "--output", out], capsys)
    assert code == 0, err
    result = json.loads((out / "bench.json").read_text())
    assert "embedded once by" in result["timing"] and "timed on the questions alone" in result["timing"]
    for row in result["models"]:
        assert row["dev_metrics"]["space_cosine"] == pytest.approx(1.0, abs=1e-5)  # the same model both sides
        assert row["throughput_seq_s"] > 0
    code, _, err = run_cli(["bench", t, "--task", "stsb-zeroshot", "--documents-by", t, "--output", out], capsys)
    assert code == 2 and "--documents-by is for --task squad-retrieval" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(
        ["bench", t, narrow, "--task", "squad-retrieval", "--documents-by", t, "--output", out], capsys
    )
    assert code == 2 and "dimensional embeddings" in err and len(err.strip().splitlines()) == 1


@pytest.mark.cli
def test_bench_keeps_each_models_own_paragraphs(folders, capsys, tmp_path, monkeypatch):
    """Symmetric bench on squad-retrieval: a benched model's paragraph embeddings are cached on its weights, so
    a second bench of it (a resumed frontier) embeds the questions only and scores the same."""
    monkeypatch.setenv("ALEMBERT_CACHE", str(tmp_path / "cache"))  # its own: other tests cache these models' too
    docs = tmp_path / "cache" / "embedding-documents"
    t, other = folders["teacher"], folders["other"]
    scores = []
    for run in ("a", "b"):
        argv = ["bench", t, other, "--task", "squad-retrieval", "--max-eval-samples", 8, "--repeats", 1, "--threads", 1]
        code, _, err = run_cli([*argv, "--output", tmp_path / run], capsys)
        assert code == 0, err
        scores.append([r["dev_metrics"] for r in json.loads((tmp_path / run / "bench.json").read_text())["models"]])
        if run == "a":
            added = set(docs.glob("*.npy"))
            assert len(added) == 2  # one file per model, written by the first bench
            stamps = {p: p.stat().st_mtime_ns for p in added}
    assert scores[0] == scores[1]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # read back, not written again


def test_the_run_reports_asymmetric_search_or_why_not(folders):
    """What distill-general records for the card (real SQuAD dev, held-out questions): the figures with the
    teacher's paragraphs when the student shares its space, the one-line reason when it does not, and only
    the teacher's name without squad-retrieval among the eval tasks."""
    from types import SimpleNamespace

    from alembert.embedding.run import asymmetric_search

    cfg = SimpleNamespace(teacher="T", eval_tasks=["squad-retrieval"], train=SimpleNamespace(eval_batch_size=64))
    teacher, ttok = load_embedding_model(folders["teacher"])
    other, otok = load_embedding_model(folders["other"])
    same = asymmetric_search(teacher, ttok, teacher, ttok, cfg, 32)
    assert same["teacher"] == "T" and same["squad-retrieval"]["space_cosine"] == pytest.approx(1.0, abs=1e-5)
    apart = asymmetric_search(other, otok, teacher, ttok, cfg, 32)
    assert "do not share a space" in apart["refused"] and "squad-retrieval" not in apart
    cfg.eval_tasks = ["stsb-zeroshot"]
    assert asymmetric_search(teacher, ttok, teacher, ttok, cfg, 32) == {"teacher": "T"}
