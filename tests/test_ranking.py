"""Ranking distillation (issue 29 item 2): losses/ranking.py, terms/ranking.py, embedding/queries.py.

The losses are checked against an independent numpy computation (scores, masking, temperature);
the miner on a hand-made space whose top-k is known; the inverse-cloze sampler for its seed and
for never drawing from the held-out SQuAD articles; the sampler for whole groups; the command end
to end and its one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from test_embedding import corpus, embed_cmd, tiny_st  # noqa: F401  (tiny_st is a fixture)

from alembert.embedding.queries import QueryGroupSampler, inverse_cloze, mine, query_set
from alembert.errors import AlembertError
from alembert.losses.ranking import margin_mse_loss, ranking_kl_loss
from alembert.terms import StepInputs, get_term
from alembert.terms.base import Needs


def cos(q, c):
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    c = c / np.linalg.norm(c, axis=-1, keepdims=True)
    return np.einsum("bd,bkd->bk", q, c)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def reference_kl(sq, sc, tq, tc, temperature, mask):
    out = []
    for b in range(len(sq)):
        keep = mask[b]
        if keep.sum() < 2:
            continue
        ls = log_softmax(cos(sq[b : b + 1], sc[b : b + 1])[0][keep] / temperature)
        lt = log_softmax(cos(tq[b : b + 1], tc[b : b + 1])[0][keep] / temperature)
        out.append((np.exp(lt) * (lt - ls)).sum())
    return np.mean(out)


def test_the_listwise_kl_is_the_independent_computation_with_masks_and_temperature():
    rng = np.random.default_rng(0)
    sq, sc = rng.normal(size=(4, 6)), rng.normal(size=(4, 5, 6))
    tq, tc = rng.normal(size=(4, 9)), rng.normal(size=(4, 5, 9))  # another width: only scores are compared
    mask = np.ones((4, 5), bool)
    mask[1, 3:] = False  # a query with fewer candidates
    mask[2, 1:] = False  # one candidate: no ordering, left out of the mean
    t = [torch.tensor(x, dtype=torch.float64) for x in (sq, sc, tq, tc)]
    for temperature in (0.05, 1.0):
        got = ranking_kl_loss(*t, temperature, torch.tensor(mask)).item()
        assert got == pytest.approx(reference_kl(sq, sc, tq, tc, temperature, mask), rel=1e-9)
    assert ranking_kl_loss(t[2], t[3], t[2], t[3]).item() == pytest.approx(0.0, abs=1e-12)
    assert ranking_kl_loss(*t, 0.05, torch.zeros(4, 5, dtype=torch.bool)).item() == 0.0
    student = t[1].clone().requires_grad_()
    ranking_kl_loss(t[0], student, t[2], t[3], 0.05, torch.tensor(mask)).backward()
    assert torch.isfinite(student.grad).all() and student.grad[2].abs().sum() == 0  # the lone candidate: no gradient
    with pytest.raises(AlembertError, match="temperature must be > 0"):
        ranking_kl_loss(*t, 0.0)


def test_margin_mse_matches_the_margins_of_the_first_candidate():
    rng = np.random.default_rng(1)
    sq, sc, tq, tc = (
        rng.normal(size=(3, 4)),
        rng.normal(size=(3, 4, 4)),
        rng.normal(size=(3, 4)),
        rng.normal(size=(3, 4, 4)),
    )
    mask = np.ones((3, 4), bool)
    mask[0, 2] = False
    s, t = cos(sq, sc), cos(tq, tc)
    want = np.mean(
        [((s[b, 0] - s[b, j]) - (t[b, 0] - t[b, j])) ** 2 for b in range(3) for j in range(1, 4) if mask[b, j]]
    )
    args = [torch.tensor(x) for x in (sq, sc, tq, tc)]
    assert margin_mse_loss(*args, torch.tensor(mask)).item() == pytest.approx(want, rel=1e-9)


def test_the_term_reads_query_groups_and_refuses_other_batches():
    term_cls = get_term("embed_rank")
    params = term_cls.Params(candidates=2, temperature=0.1)
    assert term_cls.group_size(params) == 3 and term_cls.needs == Needs(embeddings=True) and term_cls.cacheable
    term = term_cls(params, None, None)
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(6, 4)), rng.normal(size=(6, 5))

    class Out:
        def __init__(self, e):
            self.embeddings = torch.tensor(e)

    value = term.value(StepInputs(Out(s), Out(t), [], None)).item()
    g = lambda e: (e[0::3], np.stack([e[1::3], e[2::3]], 1))  # noqa: E731
    assert value == pytest.approx(reference_kl(*g(s), *g(t), 0.1, np.ones((2, 2), bool)), rel=1e-9)
    with pytest.raises(AlembertError, match="not groups of a query and its 2 candidates"):
        term.value(StepInputs(Out(s[:5]), Out(t[:5]), [], None))


def test_the_miner_finds_the_known_top_k_and_puts_the_known_passage_first():
    # passages on the unit circle at known angles; queries between them
    angles = np.array([0, 10, 20, 30, 90, 180, 270], float)
    emb = np.stack([np.cos(np.radians(angles)), np.sin(np.radians(angles))], 1).astype(np.float32)
    q = np.array([[1.0, 0.05], [0.0, 1.0]], np.float32) * 3  # near 0-10 degrees; at 90 (not unit length)
    emb = np.concatenate([emb, q])  # rows 7, 8 are the queries
    passages = np.arange(7)
    got = mine(emb, np.array([7, 8]), passages, 3, block=1)
    assert got.tolist() == [[0, 1, 2], [4, 3, 2]]
    got = mine(emb, np.array([7, 8]), passages, 3, positives=np.array([5, 3]))
    assert got.tolist() == [[5, 0, 1], [3, 4, 2]]  # a known passage leads; kept once
    # a query that is also a passage is never its own candidate
    assert 4 not in mine(emb, np.array([4]), passages, 3)[0]
    with pytest.raises(AlembertError, match="more passages than candidates"):
        mine(emb, np.array([7]), passages[:3], 3)


def test_inverse_cloze_is_seeded_and_draws_sentences_of_multi_sentence_passages():
    passages = [
        "One sentence only here.",
        "The first claim is made here. The second claim follows after it. A third one closes it.",
        "Alpha beta gamma delta. Epsilon zeta eta theta.",
    ]
    a, b = inverse_cloze(passages, 2, seed=3), inverse_cloze(passages, 2, seed=3)
    assert a == b and len(a) == 2
    assert all(q in p and q != p and p != passages[0] for q, p in a)
    draws = {tuple(inverse_cloze(passages, 2, seed=s)) for s in range(8)}
    assert len(draws) > 1


def test_pseudo_queries_of_squad_never_come_from_the_held_out_articles():
    from alembert.data.squad import split_by_article
    from alembert.embedding.data import load_texts

    texts = load_texts(["squad"])
    qs = query_set(texts, [], 200, seed=0)
    _, test = split_by_article()
    held_out = set(test["context"])
    pairs = [(qs.texts[q], qs.texts[p]) for q, p in zip(qs.queries, qs.positives, strict=True)]
    assert qs.pseudo == 200 and all(p not in held_out and q in p for q, p in pairs)
    assert not any(q in c for q, _ in pairs for c in held_out)
    assert not set(qs.passages) & set(qs.queries)
    # the SQuAD questions are texts of the run already (stripped alike): no new text, the same teacher cache
    questions = query_set(texts, ["squad"], 0, seed=0)
    assert questions.texts == texts and (questions.positives >= 0).all() and len(questions.queries) > 8000


def test_the_sampler_draws_whole_groups_shuffled_each_epoch():
    groups = np.arange(30).reshape(10, 3)
    sampler = QueryGroupSampler(groups, 4, seed=1)
    first = list(sampler)
    assert len(sampler) == 3 and [len(b) for b in first] == [12, 12, 6]
    rows = [tuple(b[i : i + 3]) for b in first for i in range(0, len(b), 3)]
    assert sorted(rows) == [tuple(g) for g in groups.tolist()]
    sampler.set_epoch(1)
    assert list(sampler) != first
    # two processes split each batch: whole groups for each, so the last batch keeps an even number of groups
    halves = QueryGroupSampler(np.arange(33).reshape(11, 3), 4, seed=1, processes=2)
    assert [len(b) // 3 for b in halves] == [4, 4, 2] and len(halves) == 3
    with pytest.raises(AlembertError, match="use a multiple of 2"):
        QueryGroupSampler(groups, 3, processes=2)


@pytest.mark.cli
def test_embed_rank_trains_on_mined_groups_end_to_end(tmp_path, tiny_st, capsys):  # noqa: F811
    queries = tmp_path / "queries.txt"
    queries.write_text("a cat\nthe market\nmusic played\n")
    out = tmp_path / "rank"
    cmd = embed_cmd(tiny_st, corpus(tmp_path), out, "--queries", queries, "--batch-size", 2, "--max-steps", 3)
    cmd[cmd.index("embed-mse")] = "embed-rank"
    code, stdout, err = run_cli([*cmd, "--dry-run"], capsys)
    assert code == 0 and "embed-rank" in stdout and not out.exists(), err
    code, _, err = run_cli(cmd, capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["details"]["queries"] == 3 and metrics["details"]["candidates"] == 7
    assert metrics["steps"] == 3 and metrics["train_examples"] == 66 + 3
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(r["embed_rank"] >= 0 for r in log if "embed_rank" in r) and any("embed_rank" in r for r in log)
    from alembert.embedding.shards import read
    from alembert.models.packaged import cache_dir

    found = [np.asarray(read(m.parent)) for m in cache_dir().glob("embeddings/*/mined-*/meta.json")]
    (mined,) = [m for m in found if m.shape == (3, 7)]  # cached in shards beside the teacher's embeddings
    assert mined.max() < 66 + 3  # text indices of the run's texts


@pytest.mark.cli
def test_bad_ranking_input_is_one_line_before_any_output(tmp_path, tiny_st, capsys):  # noqa: F811
    texts, out = corpus(tmp_path), tmp_path / "out"
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    rank = embed_cmd(tiny_st, texts, out)
    rank[rank.index("embed-mse")] = "embed-rank"
    for cmd, message in [
        (rank, "give queries with --queries"),
        ([*rank, "--queries", empty], "holds no text"),
        ([*embed_cmd(tiny_st, texts, out), "--pseudo-queries", 5], "feed a ranking term"),
        ([*rank, "--pseudo-queries", 5], "no passage of the run's texts has two sentences"),
    ]:
        code, _, err = run_cli(cmd, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (cmd, err)
        assert not out.exists()


def test_the_mined_candidates_are_cached_in_shards_and_a_partial_cache_resumes(tmp_path, monkeypatch):
    import alembert.embedding.queries as q

    rng = np.random.default_rng(4)
    emb = rng.normal(size=(50, 8)).astype(np.float32)
    queries, passages = np.arange(40, 50), np.arange(40)
    want = mine(emb, queries, passages, 3)
    got = q.mined(tmp_path, emb, queries, passages, 3, rows_per_shard=4)
    (folder,) = tmp_path.glob("mined-*")
    assert np.array_equal(got, want) and sorted(p.name for p in folder.glob("shard-*")) == [
        "shard-00000.npy",
        "shard-00001.npy",
        "shard-00002.npy",
    ]
    # as if killed after the first shard: the partial folder keeps it, the next run mines only the other two
    partial = folder.with_name(f".partial-{folder.name}")
    folder.rename(partial)
    for name in ("meta.json", "shard-00001.npy", "shard-00002.npy"):
        (partial / name).unlink()
    calls = []
    real = q.mine
    monkeypatch.setattr(q, "mine", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    assert np.array_equal(q.mined(tmp_path, emb, queries, passages, 3, rows_per_shard=4), want)
    assert calls == [4, 2] and not partial.exists()
