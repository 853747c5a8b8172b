"""The static student builder (alembert/students/static.py): its start (each token through the teacher,
PCA, SIF weights) against independent numpy computations on a tiny teacher; ``distill-general
--student static:dim=16`` end to end, its folder loaded by model2vec, sentence-transformers and
``alembert evaluate``; and bad input refused in one line before any compute."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import run_cli

from alembert.errors import AlembertError
from alembert.models.sentence import load_embedding_model
from alembert.students.static import pca_vectors, sif_weights, special_ids, token_counts, token_vectors

TEXTS = [
    "a cat sat on the mat",
    "the weather is nice today",
    "stocks fell sharply on monday",
    "he plays the violin",
    "a man is playing a guitar",
    "the market dropped at the open",
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_bert):
    """A sentence-transformers teacher written by sentence-transformers itself: the tiny encoder, mean pooling,
    Normalize (width 32, the BERT vocabulary)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as m

    path = tmp_path_factory.mktemp("static-teacher")
    t = m.Transformer(str(tiny_bert))
    SentenceTransformer(
        modules=[t, m.Pooling(t.get_embedding_dimension(), pooling_mode="mean"), m.Normalize()], device="cpu"
    ).save(str(path))
    return path


def test_token_vectors_are_each_token_framed_by_cls_sep_through_the_teacher(teacher):
    model, tok = load_embedding_model(teacher)
    vectors = token_vectors(model, tok, batch_size=4096)
    specials = special_ids(tok, len(tok))
    assert vectors.shape == (len(tok), 32) and not vectors[specials].any()
    encoder = model.encoder.eval()
    cls, sep = tok.cls_token_id, tok.sep_token_id
    for i in [1996, 4937, 2003, 7592, 29612]:  # the, cat, is, hello, and a rare word piece
        with torch.no_grad():
            hidden = encoder(input_ids=torch.tensor([[cls, i, sep]])).last_hidden_state[0].numpy()
        mean = hidden.mean(0)  # mean pooling over the three tokens, then Normalize: the teacher's own output
        np.testing.assert_allclose(vectors[i], mean / np.linalg.norm(mean), atol=1e-5)


def test_pca_matches_an_eigendecomposition_of_the_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))  # correlated features
    keep = np.ones(300, bool)
    keep[[0, 5]] = False  # special rows: not fitted, left zero
    projected, mean, components, kept = pca_vectors(x.astype(np.float32), keep, 4)
    fit = x[keep]
    centred = fit - fit.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred / (len(fit) - 1))
    top = vectors[:, ::-1][:, :4]
    want = centred @ top
    signs = np.sign((projected[keep] * want).sum(0))  # a component's sign is a convention
    np.testing.assert_allclose(projected[keep], want * signs, atol=1e-3)
    np.testing.assert_allclose(mean, fit.mean(0), atol=1e-5)
    assert kept == pytest.approx(values[::-1][:4].sum() / values.sum(), abs=1e-5)
    assert not projected[[0, 5]].any()


def test_sif_weights_from_counts_with_a_zipf_fallback_for_unseen_tokens(bert_tokenizer):
    vocab = len(bert_tokenizer)
    specials = special_ids(bert_tokenizer, vocab)
    enc = bert_tokenizer(TEXTS, padding=True, return_tensors="pt")
    batches = [{k: v[:3] for k, v in enc.items()}, {k: v[3:] for k, v in enc.items()}]
    counts = token_counts(batches, vocab)
    real = Counter(i for ids in bert_tokenizer(TEXTS)["input_ids"] for i in ids)  # no padding
    assert {i: int(c) for i, c in enumerate(counts) if c} == dict(real)

    a = 1e-3
    w = sif_weights(counts, specials, a)
    seen = {i: c for i, c in real.items() if i not in specials}
    total = sum(seen.values())
    ranked = sorted(seen, key=lambda i: -seen[i])  # ties: stable by id
    rest = [i for i in range(vocab) if i not in seen and i not in specials]
    harmonic = sum(1.0 / (r + 2) for r in range(len(ranked) + len(rest)))
    for i, c in seen.items():
        assert w[i] == pytest.approx(a / (a + c / total), rel=1e-5)
    for i in (rest[0], rest[100], rest[-1]):
        p = 1.0 / (len(ranked) + rest.index(i) + 2) / harmonic
        assert w[i] == pytest.approx(a / (a + p), rel=1e-5)
    assert not w[specials].any()
    the = bert_tokenizer.convert_tokens_to_ids("the")
    assert w[the] < w[bert_tokenizer.convert_tokens_to_ids("violin")] < w[rest[0]]  # frequent tokens count less


def corpus(tmp_path, n=60):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(f"{t} number {i}" for i in range(n // len(TEXTS)) for t in TEXTS))
    return path


def static_cmd(teacher, texts, out, student="static:dim=16", *extra):
    return [
        "distill-general",
        "--teacher",
        teacher,
        "--student",
        student,
        "--recipe",
        "embed-mse",
        "--corpus",
        texts,
        "--max-length",
        32,
        "--batch-size",
        8,
        "--log-every",
        1,
        "--eval-every",
        4,
        "--max-steps",
        8,
        "--lr",
        1e-2,
        "--eval-tasks",
        "stsb-zeroshot",
        "--output",
        out,
        *extra,
    ]


@pytest.mark.cli
def test_distill_general_static_student_end_to_end(tmp_path, teacher, capsys):
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

    from alembert.runtimes import load_any_embedding

    out = tmp_path / "static"
    code, _, err = run_cli(static_cmd(teacher, corpus(tmp_path), out), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"].startswith("static: 30,522 token vectors of dim 16")
    assert metrics["parameters"] == 30522 * 16 + 30522  # vectors and trainable weights
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("samples_per_s" in r and "embed_mse" in r for r in log)
    assert any("teacher_embeddings_mapped" in r for r in log)  # compared in the student's own (PCA) space

    model, tok = load_any_embedding(out)  # the PyTorch runtime reads the static folder
    assert model.runtime.format == "pytorch"
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    ours = model(**enc).embeddings.detach().numpy()
    assert ours.shape == (len(TEXTS), 16)
    assert np.abs(StaticModel.from_pretrained(str(out)).encode(TEXTS) - ours).max() < 1e-5
    assert np.abs(SentenceTransformer(str(out), device="cpu").encode(TEXTS) - ours).max() < 1e-5

    card = (out / "README.md").read_text()
    assert "static student" in card and "dim 16" in card and "StaticModel.from_pretrained" in card
    code, stdout, err = run_cli(["evaluate", out, "--task", "stsb-zeroshot", "--max-length", 32], capsys)
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["spearman"] == pytest.approx(
        metrics["dev"]["stsb-zeroshot"]["spearman"], abs=1e-6
    )
    bench = tmp_path / "bench"
    argv = ["bench", out, "--task", "stsb-zeroshot", "--max-eval-samples", 20, "--repeats", 1, "--output", bench]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    (row,) = json.loads((bench / "bench.json").read_text())["models"]
    assert row["kind"] == "pytorch" and row["params"] == 30522 * 16 and row["throughput_seq_s"] > 0


@pytest.mark.cli
def test_the_trained_table_moves_from_its_start(tmp_path, teacher, capsys):
    """Training changes the vectors and the weights (both trainable): the saved (baked) table differs from the
    start's, which a zero-step run saves."""
    from safetensors.torch import load_file

    texts = corpus(tmp_path)
    start, trained = tmp_path / "start", tmp_path / "trained"
    assert run_cli(static_cmd(teacher, texts, start, "static:dim=16", "--max-steps", 1, "--lr", 1e-9), capsys)[0] == 0
    assert run_cli(static_cmd(teacher, texts, trained), capsys)[0] == 0
    a, b = (load_file(str(d / "model.safetensors"))["embeddings"] for d in (start, trained))
    assert a.shape == b.shape == (30522, 16) and (a - b).abs().max() > 1e-3


@pytest.mark.cli
def test_a_static_student_trains_further_from_its_folder(tmp_path, teacher, capsys):
    """``--student FOLDER`` of a static student (another text set, a second stage): it keeps its saved
    PCA to the teacher (so embed-mse compares in its space) and starts where the folder left off."""
    from safetensors.torch import load_file

    from alembert.runtimes import load_any_embedding

    texts = corpus(tmp_path)
    first, again = tmp_path / "first", tmp_path / "again"
    assert run_cli(static_cmd(teacher, texts, first), capsys)[0] == 0
    argv = static_cmd(teacher, texts, again, str(first), "--max-steps", 1, "--lr", 1e-9)
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    a, b = (load_file(str(d / "model.safetensors"))["embeddings"] for d in (first, again))
    assert (a - b).abs().max() < 1e-4  # one step at lr 1e-9: the folder's table, not a new start
    log = [json.loads(line) for line in (again / "log.jsonl").read_text().splitlines()]
    assert any("teacher_embeddings_mapped" in r for r in log)
    assert load_any_embedding(again)[0].teacher_map is not None


@pytest.mark.cli
@pytest.mark.parametrize(
    ("student", "fix"),
    [
        ("static:dim=64", "wider than the teacher's embeddings (32)"),
        ("static:dim", "expected static:KEY=VALUE"),
    ],
)
def test_bad_static_students_are_refused_before_any_compute(tmp_path, teacher, capsys, monkeypatch, student, fix):
    import alembert.embedding.run as run

    def computed(*a, **k):
        raise AssertionError("computed before refusing")

    monkeypatch.setattr(run, "load_texts", computed)
    monkeypatch.setattr(run, "build_embedding_cache", computed)
    out = tmp_path / "out"
    code, _, err = run_cli(static_cmd(teacher, corpus(tmp_path), out, student), capsys)
    assert code == 2 and fix in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.cli
def test_a_teacher_without_a_tokenizer_is_refused(tmp_path, teacher, capsys):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(teacher, bare)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (bare / name).unlink(missing_ok=True)
    out = tmp_path / "out"
    code, _, err = run_cli(static_cmd(bare, corpus(tmp_path), out), capsys)
    assert code == 2 and "no usable tokenizer" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_slow_tokenizer_is_refused_by_the_builder_check(teacher):
    from alembert.students import build_student

    model, tok = load_embedding_model(teacher)

    class Slow:
        is_fast = False

    with pytest.raises(AlembertError, match="fast tokenizer"):
        build_student({"builder": "static", "dim": 8}, model.encoder, embedder=model, tokenizer=Slow(), check_only=True)
    with pytest.raises(AlembertError, match="sentence encoder: use it with distill-general"):
        build_student({"builder": "static"}, model.encoder, check_only=True)  # a task command has no embedder


@pytest.mark.cli
def test_an_empty_corpus_is_refused(tmp_path, teacher, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    out = tmp_path / "out"
    code, _, err = run_cli(static_cmd(teacher, empty, out), capsys)
    assert code == 2 and "no text in" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
