"""Tests for TinyBERT data augmentation (alembert.data.augment) and ``alembert augment``.

A tiny random BERT with an MLM head, using the packaged MiniLM tokenizer's vocabulary, is
built once per module: its random embeddings are enough to test the logic.
"""

import json

import datasets
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

from alembert.cli.main import main
from alembert.data.augment import Augmenter, _mlm_logits, augment_dataset, split_words
from alembert.data.readers import load_data_file
from alembert.errors import AlembertError
from alembert.models.resolve import resolve_model

SENTENCES = [
    "No Weapons of Mass Destruction Found in Iraq Yet.",
    "A place of sorrow became a place of celebration, as the faithful gathered downtown.",
    "The cat sat on the mat while the dog slept near the warm fire.",
    "Stocks fell sharply on Monday after the bank raised interest rates again.",
    "She walked slowly to the station and missed the early train by a minute.",
    "Unbelievably, the committee approved the proposal without any discussion.",
]


def _config(vocab):
    return BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder of a tiny BERT with an MLM head, folder of the same without a head)."""
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    root = tmp_path_factory.mktemp("tiny")
    BertForMaskedLM(_config(len(tok))).save_pretrained(root / "mlm")
    BertModel(_config(len(tok))).save_pretrained(root / "headless")
    for name in ("mlm", "headless"):
        tok.save_pretrained(root / name)
    return root / "mlm", root / "headless"


@pytest.fixture(scope="module")
def emb_aug(tiny):
    return Augmenter(embeddings=tiny[0], k=5)


@pytest.fixture(scope="module")
def mlm_aug(tiny):
    return Augmenter(embeddings=tiny[0], mlm=tiny[0], k=5)


def _single(texts=SENTENCES, labels=None):
    labels = labels or [i % 2 for i in range(len(texts))]
    feats = datasets.Features({"text_a": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    return datasets.Dataset.from_dict({"text_a": list(texts), "label": labels}, features=feats)


def _words(text):
    return split_words(text)[1::2]


def test_split_words_round_trips_and_separates_punctuation():
    parts = split_words("Hello,  world! It's 3pm.")
    assert "".join(parts) == "Hello,  world! It's 3pm."
    assert parts[1::2] == ["Hello", ",", "world", "!", "It", "'", "s", "3pm", "."]


@pytest.mark.parametrize("which", ["emb_aug", "mlm_aug"])
def test_deterministic_for_a_seed_and_independent_of_batching(which, request):
    aug = request.getfixturevalue(which)
    ds = _single()
    a, _ = augment_dataset(ds, aug, n=4, seed=1)
    b, _ = augment_dataset(ds, aug, n=4, seed=1, chunk_size=2)
    c, _ = augment_dataset(ds, aug, n=4, seed=2)
    assert a["text_a"] == b["text_a"]
    assert a["text_a"] != c["text_a"]


def test_labels_kept_original_first_and_columns_same(emb_aug):
    ds = _single()
    out, stats = augment_dataset(ds, emb_aug, n=3, seed=0)
    assert out.features == ds.features
    assert len(out) == stats.examples_out == len(ds) * 4
    assert stats.examples_in == len(ds) and stats.sentences == len(ds) and stats.sentences_per_s > 0
    for i, ex in enumerate(ds):
        group = out.select(range(4 * i, 4 * i + 4))
        assert group[0]["text_a"] == ex["text_a"]
        assert group["label"] == [ex["label"]] * 4
        assert all(len(_words(t)) == len(_words(ex["text_a"])) for t in group["text_a"])


def test_pairs_keep_structure_and_are_augmented_independently(emb_aug):
    text = SENTENCES[2]
    ds = datasets.Dataset.from_dict(
        {"text_a": [text, SENTENCES[0]], "text_b": [text, SENTENCES[1]], "label": [0.5, 3.0]}
    )
    out, stats = augment_dataset(ds, emb_aug, n=6, seed=0)
    assert out.column_names == ["text_a", "text_b", "label"] and stats.sentences == 4
    first = out.select(range(7))
    assert first[0]["text_a"] == first[0]["text_b"] == text
    assert first["label"] == [0.5] * 7
    copies = list(zip(first["text_a"][1:], first["text_b"][1:], strict=True))
    assert sum(a != b for a, b in copies) >= 5  # same input, different draws
    assert any(b != text for _, b in copies) and any(a != text for a, _ in copies)
    assert out.select(range(7, 14))["text_b"][0] == SENTENCES[1]


def test_replacement_rate_is_about_p(emb_aug):
    ds = _single()
    n, p = 50, 0.4
    out, stats = augment_dataset(ds, emb_aug, n=n, p=p, seed=3)
    trials = replaced = 0
    for i, ex in enumerate(ds):
        orig = _words(ex["text_a"])
        alpha = [j for j, w in enumerate(orig) if w.isalpha()]
        for copy in out["text_a"][i * (n + 1) + 1 : (i + 1) * (n + 1)]:
            new = _words(copy)
            trials += len(alpha)
            replaced += sum(new[j] != orig[j] for j in alpha)
            assert all(new[j] == orig[j] for j in range(len(orig)) if j not in alpha)
    rate = replaced / trials  # about 3000 trials: standard error 0.009
    assert abs(rate - p) < 0.05, rate
    assert abs(stats.replaced_fraction - rate) < 1e-3


@pytest.mark.parametrize("which", ["emb_aug", "mlm_aug"])
def test_p_zero_gives_identical_copies(which, request):
    ds = _single()
    out, stats = augment_dataset(ds, request.getfixturevalue(which), n=3, p=0.0)
    assert out["text_a"] == [t for t in ds["text_a"] for _ in range(4)]
    assert stats.replaced_fraction == 0


def test_replacements_come_from_the_embedding_top_k(emb_aug):
    ds = _single()
    out, _ = augment_dataset(ds, emb_aug, n=5, seed=0)
    checked = 0
    for i, ex in enumerate(ds):
        orig = _words(ex["text_a"])
        nbrs = emb_aug.neighbours(orig)
        for copy in out["text_a"][i * 6 + 1 : (i + 1) * 6]:
            for w, new in zip(orig, _words(copy), strict=True):
                if w != new:
                    assert len(nbrs[w]) == 5 and new.lower() in nbrs[w]
                    assert new[:1].isupper() == w[:1].isupper()  # case pattern kept
                    checked += 1
    assert checked > 20


def test_mlm_candidates_are_the_heads_top_k_and_fill_replacements(mlm_aug):
    tok, model = mlm_aug.mlm_tok, mlm_aug.mlm
    parts = split_words("the cat sat on the mat")
    cands = mlm_aug.mlm_candidates([parts])[0]
    assert sorted(cands) == list(range(6))
    ids = tok("the cat sat on the mat", return_tensors="pt")["input_ids"]
    ids[0, 2] = tok.mask_token_id  # "cat"
    with torch.no_grad():
        full = model(input_ids=ids).logits[0, 2]
        head = _mlm_logits(model, ids, torch.ones_like(ids), torch.tensor([2]))[0]
    assert torch.allclose(full, head, atol=1e-5)
    allowed = torch.tensor([t.isalpha() and t.isascii() for t in mlm_aug._mlm_tokens])
    allowed[tok.convert_tokens_to_ids("cat")] = False
    expect = full.masked_fill(~allowed, -torch.inf).topk(5).indices.tolist()
    assert cands[1] == tok.convert_ids_to_tokens(expect)
    # In augmented copies, single-piece words take MLM candidates, others neighbours.
    ds = _single(["the cat sat on the mat", "Unbelievably"])
    out, stats = augment_dataset(ds, mlm_aug, n=8, seed=0)
    assert stats.mlm_words == 6
    for copy in out["text_a"][1:9]:
        for j, (w, new) in enumerate(zip(_words("the cat sat on the mat"), _words(copy), strict=True)):
            assert w == new or new in cands[j]
    nbrs = mlm_aug.neighbours(["Unbelievably"])["Unbelievably"]
    assert all(c == "Unbelievably" or c.lower() in nbrs for c in out["text_a"][10:])


def test_real_embeddings_give_related_neighbours():
    nbrs = Augmenter(k=15).neighbours(["weapons", "Iraq"])
    assert "weapon" in nbrs["weapons"] and "weapons" not in nbrs["weapons"]
    assert len(nbrs["Iraq"]) == 15


def test_bad_arguments_and_headless_mlm(tiny):
    with pytest.raises(AlembertError, match="no masked-LM head.*drop --mlm"):
        Augmenter(embeddings=tiny[0], mlm=tiny[1])
    with pytest.raises(AlembertError, match="0 <= p <= 1"):
        augment_dataset(_single(), Augmenter.__new__(Augmenter), p=1.5)


# ------------------------------------------------------------------------- CLI

RTE = [
    ("0", "No weapons were found in Iraq.", "Weapons were found in Iraq.", "not_entailment"),
    ("1", "The pope was installed in Rome today.", "A new pope leads the church.", "entailment"),
    ("2", "Stocks fell sharply on Monday.", "Markets went down.", "entailment"),
]


def _rte_file(path):
    path.write_text(
        "index\tsentence1\tsentence2\tlabel\n" + "".join("\t".join(r) + "\n" for r in RTE), encoding="utf-8"
    )
    return path


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl"])
@pytest.mark.cli
def test_cli_writes_a_file_that_reads_back(tiny, tmp_path, capsys, suffix):
    src = _rte_file(tmp_path / "train.tsv")
    out = tmp_path / f"aug{suffix}"
    rc = main(
        [
            "augment",
            "--task",
            "rte",
            "--train-file",
            str(src),
            "--n",
            "3",
            "--threads",
            "1",
            "--embeddings",
            str(tiny[0]),
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "sentences/s" in printed and "12" in printed
    back = load_data_file(out, "rte")
    orig = load_data_file(src, "rte")
    assert len(back) == 12 and back.column_names == ["text_a", "text_b", "label"]
    assert back.features["label"].names == orig.features["label"].names
    assert back["label"] == [lab for lab in orig["label"] for _ in range(4)]
    assert back["text_a"][::4] == orig["text_a"] and back["text_b"][::4] == orig["text_b"]
    assert back["text_a"] != [t for t in orig["text_a"] for _ in range(4)]


@pytest.mark.cli
def test_cli_reads_glue_folder_and_single_text_task(tiny, tmp_path):
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text(
        "sentence\tlabel\na gripping , moving film \t1\nthe plot is dull and slow \t0\nan utterly charming story \t1\n",
        encoding="utf-8",
    )
    out = tmp_path / "sst.jsonl"
    rc = main(
        [
            "augment",
            "--task",
            "sst2",
            "--data-dir",
            str(tmp_path / "glue"),
            "--n",
            "2",
            "--max-train-samples",
            "2",
            "--embeddings",
            str(tiny[0]),
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["positive"] * 3 + ["negative"] * 3
    assert set(rows[0]) == {"text", "label"}
    assert load_data_file(out, "sst2")["label"] == [1, 1, 1, 0, 0, 0]


@pytest.mark.cli
def test_cli_errors(tiny, tmp_path, capsys):
    src = _rte_file(tmp_path / "train.tsv")
    base = ["augment", "--task", "rte", "--embeddings", str(tiny[0]), "--n", "1"]
    out = tmp_path / "aug.tsv"
    # --mlm without an LM head: names the folder and the fix.
    assert main([*base, "--train-file", str(src), "--mlm", str(tiny[1]), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --mlm") and str(tiny[1]) in err and "no masked-LM head" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    # Missing input.
    assert main([*base, "--train-file", str(tmp_path / "nope.tsv"), "--output", str(out)]) == 2
    assert "nope.tsv not found" in capsys.readouterr().err
    # Output exists: needs --overwrite.
    out.write_text("keep me")
    assert main([*base, "--train-file", str(src), "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main([*base, "--train-file", str(src), "--output", str(out), "--overwrite"]) == 0
    assert len(load_data_file(out, "rte")) == 6
    # Bad format or values.
    assert main([*base, "--train-file", str(src), "--output", str(tmp_path / "a.txt")]) == 2
    assert "use .tsv or .jsonl" in capsys.readouterr().err
    assert main([*base, "--train-file", str(src), "--p", "2", "--output", str(tmp_path / "b.tsv")]) == 2
    assert not list(tmp_path.glob(".*.tmp"))
