"""Sentence-embedding teachers and students: reading sentence-transformers folders, the three
losses, the teacher cache, the zero-shot metrics, distillation end to end, and bad input."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from scipy.stats import spearmanr

from alembert.embedding.cache import build_embedding_cache, embedding_cache_key
from alembert.embedding.metrics import retrieval_metrics, sts_metrics
from alembert.errors import AlembertError
from alembert.losses import embedding_cosine_loss, embedding_mse_loss, similarity_kl_loss
from alembert.models.sentence import EmbeddingModel, load_embedding_model, read_spec

TEXTS = [
    "a cat sat on the mat",
    "the weather is nice today",
    "stocks fell sharply on monday",
    "he plays the violin",
    "a man is playing a guitar",
    "the market dropped at the open",
]


def st_folder(path, encoder, mode: str, normalize: bool):
    """A sentence-transformers folder written by sentence-transformers itself (an independent writer)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    transformer = models.Transformer(str(encoder))
    modules = [transformer, models.Pooling(transformer.get_embedding_dimension(), pooling_mode=mode)]
    if normalize:
        modules.append(models.Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory, tiny_bert):
    return st_folder(tmp_path_factory.mktemp("tiny-st"), tiny_bert, "mean", True)


def ours(folder, texts=TEXTS, pooling=None):
    model, tok = load_embedding_model(folder, pooling)
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).embeddings.numpy()


@pytest.mark.parametrize(("mode", "normalize"), [("mean", True), ("cls", False), ("max", True)])
def test_pooling_is_read_from_modules_json(tmp_path, tiny_bert, mode, normalize):
    from sentence_transformers import SentenceTransformer

    folder = st_folder(tmp_path / "st", tiny_bert, mode, normalize)
    spec = read_spec(folder)
    assert (spec.pooling, spec.normalize) == (mode, normalize)
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours(folder), reference, atol=1e-5)


def test_saved_student_round_trips_through_sentence_transformers(tmp_path, tiny_st):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    model, tok = load_embedding_model(tiny_st)
    torch.manual_seed(1)
    model.dense.append(torch.nn.Linear(model.dim, 48))  # a projection to a wider teacher space
    model.save(tmp_path / "out", tok)
    assert read_spec(tmp_path / "out").dense
    reference = SentenceTransformer(str(tmp_path / "out"), device="cpu").encode(TEXTS)
    assert reference.shape == (len(TEXTS), 48)
    np.testing.assert_allclose(ours(tmp_path / "out"), reference, atol=1e-5)
    assert AutoModel.from_pretrained(tmp_path / "out").config.hidden_size == 32


def test_embedding_mse_and_cosine_against_numpy():
    r = np.random.default_rng(0)
    s, t = r.normal(size=(5, 7)), r.normal(size=(5, 7))
    assert float(embedding_mse_loss(torch.tensor(s), torch.tensor(t))) == pytest.approx(((s - t) ** 2).mean())
    cos = (s * t).sum(1) / np.linalg.norm(s, axis=1) / np.linalg.norm(t, axis=1)
    assert float(embedding_cosine_loss(torch.tensor(s), torch.tensor(t))) == pytest.approx((1 - cos).mean())
    with pytest.raises(AlembertError, match="7 dimensions and the teacher's 4"):
        embedding_mse_loss(torch.tensor(s), torch.tensor(t[:, :4]))


def test_similarity_kl_against_a_loop():
    r = np.random.default_rng(1)
    s, t, temp = r.normal(size=(4, 6)), r.normal(size=(4, 9)), 0.1  # the widths may differ
    total = 0.0
    for i in range(4):

        def dist(e, i=i):
            sims = [float(e[i] @ e[j] / np.linalg.norm(e[i]) / np.linalg.norm(e[j])) / temp for j in range(4) if j != i]
            z = np.exp(np.array(sims) - max(sims))
            return z / z.sum()

        p, q = dist(t), dist(s)
        total += float((p * np.log(p / q)).sum())
    st, tt = torch.tensor(s, requires_grad=True), torch.tensor(t, requires_grad=True)
    value = similarity_kl_loss(st, tt, temp)
    assert value.item() == pytest.approx(total / 4, rel=1e-6)
    value.backward()
    assert st.grad.abs().sum() > 0 and tt.grad is None  # only the student learns
    assert float(similarity_kl_loss(tt.detach(), tt.detach(), temp)) == pytest.approx(0.0, abs=1e-9)


def test_retrieval_metrics_on_a_hand_made_case():
    sim = np.array(
        [
            [0.9, 0.1, 0.2],  # gold 0: rank 1
            [0.8, 0.5, 0.1],  # gold 1: rank 2
            [0.7, 0.6, 0.5],
        ]
    )  # gold 2: rank 3
    m = retrieval_metrics(sim, np.array([0, 1, 2]), ks=(1, 2), mrr_at=2)
    assert m == {
        "recall@1": pytest.approx(1 / 3),
        "recall@2": pytest.approx(2 / 3),
        "mrr@2": pytest.approx((1 + 1 / 2 + 0) / 3),
    }


def test_sts_metrics_are_rank_and_linear_correlations():
    gold = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    assert sts_metrics(np.array([0.1, 0.2, 0.3, 0.4, 0.9]), gold)["spearman"] == pytest.approx(1.0)
    assert sts_metrics(-gold, gold)["pearson"] == pytest.approx(-1.0)
    pred = np.array([0.3, 0.1, 0.2, 0.5, 0.4])
    assert sts_metrics(pred, gold)["spearman"] == pytest.approx(spearmanr(pred, gold).statistic)


def test_teacher_cache_is_keyed_and_reused(tmp_path, tiny_st):
    model, tok = load_embedding_model(tiny_st)
    key = embedding_cache_key(model, tok, TEXTS, 32)
    assert key != embedding_cache_key(model, tok, TEXTS[:-1], 32)
    assert key != embedding_cache_key(model, tok, TEXTS, 16)
    other = EmbeddingModel(model.encoder, "cls", [], model.normalize)
    assert key != embedding_cache_key(other, tok, TEXTS, 32)
    cache = build_embedding_cache(model, tok, TEXTS, 32, root=tmp_path)
    np.testing.assert_allclose(cache.emb, ours(tiny_st), atol=1e-5)  # row i is text i, whatever the batching order
    assert build_embedding_cache(model, tok, TEXTS, 32, root=tmp_path).folder == cache.folder
    with torch.no_grad():
        model.encoder.embeddings.word_embeddings.weight[5000] += 1
    assert embedding_cache_key(model, tok, TEXTS, 32) != key


def corpus(tmp_path, n=64):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(f"{t} number {i}" for i in range(n // len(TEXTS) + 1) for t in TEXTS))
    return path


def embed_cmd(teacher, texts, out, *extra):
    return [
        "distill-general",
        "--teacher",
        teacher,
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
        1e-3,
        "--eval-tasks",
        "stsb-zeroshot",
        "--output",
        out,
        *extra,
    ]


@pytest.mark.parametrize("recipe", ["embed-mse", "embed-cosine", "embed-sim"])
@pytest.mark.cli
def test_distil_a_narrow_student_end_to_end(tmp_path, tiny_st, capsys, recipe):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / recipe
    cmd = embed_cmd(
        tiny_st,
        corpus(tmp_path),
        out,
        "--student-config",
        "num_layers=2,hidden_size=16,intermediate_size=32,num_heads=2",
    )
    cmd[cmd.index("embed-mse")] = recipe
    code, _, err = run_cli(cmd, capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["dev"]["stsb-zeroshot"]) == {"spearman", "pearson"} and metrics["train_examples"] == 66
    # trained into the teacher's space (every one of these recipes compares vectors): the teacher can embed
    # the documents; no squad-retrieval among the eval tasks, so no asymmetric figure to report
    assert metrics["details"]["documents_by"] == {"teacher": str(tiny_st)}
    assert f"documents by {tiny_st}" in (out / "README.md").read_text()
    st = SentenceTransformer(str(out), device="cpu")
    assert st.encode(["a test"]).shape == (1, 32)  # projected to the teacher's width
    code, stdout, err = run_cli(["evaluate", out, "--task", "stsb-zeroshot", "--max-length", 32], capsys)
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["spearman"] == pytest.approx(
        metrics["dev"]["stsb-zeroshot"]["spearman"], abs=1e-6
    )
    terms = {k for line in (out / "log.jsonl").read_text().splitlines() for k in json.loads(line)}
    assert {
        t.loss for t in __import__("alembert.distill.recipe", fromlist=["x"]).load_recipe(recipe).stages[0].losses
    } <= terms


@pytest.mark.cli
def test_no_projection_keeps_the_student_width_with_embed_sim(tmp_path, tiny_st, capsys):
    from sentence_transformers import SentenceTransformer

    narrow = ("--student-config", "num_layers=2,hidden_size=16,intermediate_size=32,num_heads=2", "--no-projection")
    cmd = embed_cmd(tiny_st, corpus(tmp_path), tmp_path / "mse", *narrow)
    code, _, err = run_cli(cmd, capsys)  # embed_mse compares vectors: it needs the teacher's width
    assert code == 2 and "projection is off" in err and not (tmp_path / "mse").exists()
    advised = err.split("compares no vectors: ")[1].split(",")[0].strip()  # the advice must work
    cmd = embed_cmd(tiny_st, corpus(tmp_path), tmp_path / "advised", *narrow)
    cmd[cmd.index("embed-mse")] = advised
    code, _, err = run_cli(cmd, capsys)
    assert code == 0, err
    assert SentenceTransformer(str(tmp_path / "advised"), device="cpu").encode(["a test"]).shape == (1, 16)
    recipe = tmp_path / "sim-only.yaml"
    recipe.write_text("name: sim-only\nstages:\n  - losses:\n      - {loss: embed_sim, temperature: 0.1}\n")
    cmd = embed_cmd(tiny_st, corpus(tmp_path), tmp_path / "sim", *narrow)
    cmd[cmd.index("embed-mse")] = str(recipe)
    code, _, err = run_cli(cmd, capsys)
    assert code == 0, err
    assert SentenceTransformer(str(tmp_path / "sim"), device="cpu").encode(["a test"]).shape == (1, 16)


@pytest.mark.cli
def test_retrieval_is_evaluated(tmp_path, tiny_st, capsys):
    code, stdout, err = run_cli(["evaluate", tiny_st, "--task", "squad-retrieval", "--max-length", 64], capsys)
    assert code == 0, err
    m = json.loads(stdout.strip().splitlines()[-1])
    assert set(m) == {"recall@1", "recall@10", "mrr@10"} and 0 <= m["recall@1"] <= m["recall@10"]
    assert m["mrr@10"] >= m["recall@1"] and m["mrr@10"] <= m["recall@10"]


@pytest.mark.cli
def test_plain_encoder_without_pooling_is_refused(tmp_path, tiny_bert, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(embed_cmd(tiny_bert, corpus(tmp_path), out), capsys)
    assert code == 2 and "no modules.json" in err and "--pooling mean" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    code, _, err = run_cli(embed_cmd(tiny_bert, corpus(tmp_path), out, "--pooling", "mean"), capsys)
    assert code == 0, err


@pytest.mark.cli
def test_empty_text_file_is_refused(tmp_path, tiny_st, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    out = tmp_path / "out"
    code, _, err = run_cli(embed_cmd(tiny_st, empty, out), capsys)
    assert code == 2 and "no text in" in err and not out.exists()


@pytest.mark.cli
def test_student_that_cannot_encode_the_text_is_refused(tmp_path, tiny_st, capsys):
    runes = tmp_path / "runes.txt"
    runes.write_text("\n".join(["ᚠᚢᚦᚨᚱᚲ ᚷᚹᚺ ⵣⵓⵍ"] * 20))
    out = tmp_path / "out"
    code, _, err = run_cli(embed_cmd(tiny_st, runes, out), capsys)
    assert code == 2 and "as unknown" in err and not out.exists()


@pytest.mark.cli
def test_embedding_terms_compose_with_hidden_state_terms(tmp_path, tiny_st, capsys):
    """embed_mse (cached side) with hidden_mse (token level): the teacher runs online and gives both."""
    recipe = tmp_path / "mixed.yaml"
    recipe.write_text(
        "name: mixed\nstages:\n  - losses:\n      - {loss: embed_mse}\n"
        "      - {loss: hidden_mse, weight: 0.1, mapping: last-layer}\n"
    )
    out = tmp_path / "mixed"
    cmd = embed_cmd(tiny_st, corpus(tmp_path), out, "--student-layers", "0,2")
    cmd[cmd.index("embed-mse")] = str(recipe)
    code, _, err = run_cli(cmd, capsys)
    assert code == 0, err
    steps = [
        json.loads(line)
        for line in (out / "log.jsonl").read_text().splitlines()
        if '"step"' in line and '"embed_mse"' in line
    ]
    assert steps and all(r["hidden_mse"] > 0 and r["embed_mse"] > 0 for r in steps)
    assert json.loads((out / "metrics.json").read_text())["details"]["sentences_per_second"]["student"] > 0


def test_procrustes_projection_init_is_scipys_rotation_and_keeps_the_students_cosines(tiny_st):
    """The Procrustes start equals scipy's orthogonal_procrustes (on the student's embeddings
    padded to the teacher's width), has no bias, and leaves every cosine between the student's
    own embeddings as it was before the Dense layer."""
    from scipy.linalg import orthogonal_procrustes

    from alembert.embedding.cache import encode
    from alembert.embedding.student import fit_projection

    model, tok = load_embedding_model(tiny_st)
    texts = [f"{t} {i}" for i in range(10) for t in TEXTS]
    before = encode(model, tok, texts, 32)  # normalised, no Dense yet
    model.normalize = False
    pooled = encode(model, tok, texts, 32).astype(np.float64)
    model.normalize = True
    targets = np.random.default_rng(0).normal(size=(len(texts), 48))
    model.dense.append(torch.nn.Linear(32, 48))
    fitted = fit_projection(model, tok, texts, targets, 32, method="procrustes")
    rotation, _ = orthogonal_procrustes(np.pad(pooled, ((0, 0), (0, 16))), targets)
    w = model.dense[-1].weight.detach().double().numpy().T  # (32, 48)
    np.testing.assert_allclose(w, rotation[:32], atol=1e-5)
    assert np.abs(model.dense[-1].bias.detach().numpy()).max() == 0.0
    mapped = pooled @ rotation[:32]
    cos = (mapped * targets).sum(1) / np.linalg.norm(mapped, axis=1) / np.linalg.norm(targets, axis=1)
    assert fitted == pytest.approx(cos.mean(), abs=1e-6)
    after = encode(model, tok, texts, 32)
    np.testing.assert_allclose(after @ after.T, before @ before.T, atol=1e-5)


NARROW = ("--student-config", "num_layers=2,hidden_size=16,intermediate_size=32,num_heads=2")


@pytest.mark.cli
def test_procrustes_start_is_logged_and_needs_cached_teacher_embeddings(tmp_path, tiny_st, capsys):
    init = ("--set", "student.projection_init=procrustes")
    code, _, err = run_cli(embed_cmd(tiny_st, corpus(tmp_path), tmp_path / "fit", *NARROW, *init), capsys)
    assert code == 0, err
    fits = [
        json.loads(line)
        for line in (tmp_path / "fit" / "log.jsonl").read_text().splitlines()
        if "projection_init" in line
    ]
    assert [(f["projection_init"], f["texts"]) for f in fits] == [("procrustes", 66)] and -1 <= fits[0][
        "mean_cosine"
    ] <= 1
    out = tmp_path / "online"
    code, _, err = run_cli(embed_cmd(tiny_st, corpus(tmp_path), out, *NARROW, *init, "--no-cache-teacher"), capsys)
    assert code != 0 and "projection_init=procrustes" in err and "Traceback" not in err
    assert not out.exists()


def test_lstsq_projection_init_recovers_a_linear_map(tiny_st):
    """Targets that are an exact linear image of the student's pooled embeddings are fitted exactly."""
    from alembert.embedding.student import fit_projection

    model, tok = load_embedding_model(tiny_st)
    model.normalize = False
    torch.manual_seed(3)
    truth = torch.nn.Linear(32, 48).double()
    texts = [f"{t} {i}" for i in range(20) for t in TEXTS]  # 120 texts > 33 unknowns per output
    with torch.no_grad():
        pooled = torch.from_numpy(
            __import__("alembert.embedding.cache", fromlist=["encode"]).encode(model, tok, texts, 32)
        ).double()
        targets = truth(pooled).numpy()
    model.dense.append(torch.nn.Linear(32, 48))
    assert fit_projection(model, tok, texts, targets, 32) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(
        model.dense[-1].weight.detach().double().numpy(), truth.weight.detach().numpy(), atol=1e-4
    )


@pytest.mark.cli
@pytest.mark.train
def test_the_dry_run_knows_a_teacher_cache_already_on_disk(tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALEMBERT_CACHE", str(tmp_path / "cache"))  # empty: no earlier test's cache of these texts
    teacher = st_folder(tmp_path / "st", tiny_bert, "mean", True)
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(f"sentence number {i} about topic {i % 7}" for i in range(40)))
    args = ["distill-general", "--teacher", teacher, "--recipe", "embed-mse", "--corpus", corpus, "--max-length", 32]
    args += ["--batch-size", 8, "--max-steps", 2, "--eval-tasks", "stsb-zeroshot", "--student-layers", 0]
    code, before, err = run_cli([*args, "--output", tmp_path / "a", "--dry-run"], capsys)
    assert code == 0 and "one pass over 40 examples" in before, err
    assert run_cli([*args, "--output", tmp_path / "a"], capsys)[0] == 0  # builds the cache
    code, after, err = run_cli([*args, "--output", tmp_path / "b", "--dry-run"], capsys)
    assert code == 0 and "already on disk" in after and "one pass over" not in after, err
