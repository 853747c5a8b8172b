"""Raw-text corpus loading, sentence packing and dynamic masking (general distillation data).

The real-corpus checks read shared/data/corpus/gutenberg and compare with the line
counts in shared/data/SOURCES.md; like the GLUE tests they fail (never skip) when the
data is missing.
"""

import os
from pathlib import Path

import datasets
import pytest
import torch

from alembert.data.corpus import load_corpus, pack_sentences, pack_token_lists, split_sentences
from alembert.data.masking import MLMCollator
from alembert.errors import AlembertError

CORPUS = Path(
    os.environ.get("ALEMBERT_CORPUS")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "gutenberg"
)
SOURCES_LINES = {
    "Austen_Emma.txt": 13878,
    "Austen_Pride.txt": 2267,
    "CBronte_Jane.txt": 4082,
    "Dickens_David.txt": 33127,
    "Eliot_Middlemarch.txt": 28113,
    "Thackeray_Vanity.txt": 26342,
    "melville-moby_dick.txt": 22924,
}


# ------------------------------------------------------------------ masking


@pytest.fixture(scope="module")
def features(bert_tokenizer):
    """300 sequences of 40..120 random ordinary tokens between [CLS] and [SEP] (~24k maskable)."""
    g = torch.Generator().manual_seed(123)
    ordinary = MLMCollator(bert_tokenizer, seed=0).random_ids
    feats = []
    for _ in range(300):
        n = int(torch.randint(40, 121, (1,), generator=g))
        ids = ordinary[torch.randint(len(ordinary), (n,), generator=g)].tolist()
        ids = [bert_tokenizer.cls_token_id, *ids, bert_tokenizer.sep_token_id]
        feats.append(
            {"input_ids": ids, "attention_mask": [1] * len(ids), "token_type_ids": [0] * len(ids), "length": len(ids)}
        )
    return feats


def _original(bert_tokenizer, features):
    return bert_tokenizer.pad(
        [{k: f[k] for k in ("input_ids", "attention_mask")} for f in features], return_tensors="pt"
    )


def test_masking_rate_and_80_10_10_split(bert_tokenizer, features):
    orig = _original(bert_tokenizer, features)
    batch = MLMCollator(bert_tokenizer, seed=0)(features)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert all(v.dtype == torch.long for v in batch.values())
    ids, labels, o = batch["input_ids"], batch["labels"], orig["input_ids"]
    special = torch.isin(o, torch.tensor(bert_tokenizer.all_special_ids))
    maskable = orig["attention_mask"].bool() & ~special
    picked = labels != -100
    n = int(maskable.sum())
    assert n > 20000
    assert abs(picked.sum().item() / n - 0.15) < 0.01  # sd ~0.0025
    assert torch.equal(labels[picked], o[picked])  # labels: the original ids, -100 elsewhere
    assert torch.equal(ids[~picked], o[~picked])  # nothing changes where not picked
    k = picked.sum().item()
    as_mask = (ids == bert_tokenizer.mask_token_id) & picked
    as_random = (ids != o) & ~as_mask & picked
    unchanged = (ids == o) & picked
    assert abs(as_mask.sum().item() / k - 0.8) < 0.03  # sd ~0.007
    assert abs(as_random.sum().item() / k - 0.1) < 0.025  # sd ~0.0055
    assert abs(unchanged.sum().item() / k - 0.1) < 0.025
    assert not torch.isin(ids[as_random], torch.tensor(bert_tokenizer.all_special_ids)).any()


def test_special_tokens_and_padding_never_masked(bert_tokenizer, features):
    orig = _original(bert_tokenizer, features)
    batch = MLMCollator(bert_tokenizer, mlm_probability=1.0, mask_ratio=1.0, random_ratio=0.0, seed=0)(features)
    o = orig["input_ids"]
    special = torch.isin(o, torch.tensor(bert_tokenizer.all_special_ids))
    maskable = orig["attention_mask"].bool() & ~special
    assert (orig["attention_mask"] == 0).any()  # the batch has padding
    assert torch.equal(batch["labels"] != -100, maskable)  # picked exactly the maskable positions
    assert (batch["input_ids"][maskable] == bert_tokenizer.mask_token_id).all()
    assert torch.equal(batch["input_ids"][~maskable], o[~maskable])  # [CLS] [SEP] [PAD] untouched
    assert torch.equal(batch["attention_mask"], orig["attention_mask"])


def test_masks_are_dynamic_and_reproducible(bert_tokenizer, features):
    few = features[:16]
    c = MLMCollator(bert_tokenizer, seed=7)
    first, second = c(few), c(few)
    assert not torch.equal(first["labels"], second["labels"])  # new masks for every batch
    again = MLMCollator(bert_tokenizer, seed=7)(few)
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    from_gen = MLMCollator(bert_tokenizer, seed=torch.Generator().manual_seed(7))(few)
    assert torch.equal(first["labels"], from_gen["labels"])
    a, b = MLMCollator(bert_tokenizer, seed=7), MLMCollator(bert_tokenizer, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    e3 = a(few)
    assert torch.equal(e3["labels"], b(few)["labels"])
    a.set_epoch(4)
    assert not torch.equal(e3["labels"], a(few)["labels"])  # every epoch sees new masks


def test_a_collator_started_at_batch_k_draws_the_masks_of_the_kth_batch(bert_tokenizer, features):
    """A resumed run skips the batches it trained on without collating them: its masks must not depend on them."""
    batches = [features[i : i + 4] for i in range(0, 16, 4)]
    straight = MLMCollator(bert_tokenizer, seed=3)
    straight.set_epoch(2)
    drawn = [straight(b)["labels"] for b in batches]
    resumed = MLMCollator(bert_tokenizer, seed=3)
    resumed.set_epoch(2, 2)
    assert torch.equal(resumed(batches[2])["labels"], drawn[2]) and torch.equal(resumed(batches[3])["labels"], drawn[3])
    assert not torch.equal(drawn[2], MLMCollator(bert_tokenizer, seed=3)(batches[2])["labels"])  # epoch 0, batch 0


def test_masking_errors(bert_tokenizer):
    with pytest.raises(AlembertError, match="mlm_probability"):
        MLMCollator(bert_tokenizer, mlm_probability=0)
    with pytest.raises(AlembertError, match="sum to at most 1"):
        MLMCollator(bert_tokenizer, mask_ratio=0.8, random_ratio=0.3)


# ------------------------------------------------------------------ sentences and packing

WORDS = "cat dog sat on the mat and ran to see a big red car in town".split()


def _sentence(n_tokens: int, offset: int) -> str:
    """A sentence of ``n_tokens`` BERT tokens: n-1 one-piece words and a full stop."""
    words = [WORDS[(offset + i) % len(WORDS)] for i in range(n_tokens - 1)]
    return " ".join(words).capitalize() + "."


def test_split_sentences():
    lines = [
        '"I cannot agree with you, papa; you know I cannot. Mr. Weston is such',
        'a good man." She left! Then J. Smith came? yes, he did.',
        "",
        "Chapter 5",
        "Within a short walk lived a family. (One more.) And \u201cthe end.\u201d",
    ]
    assert split_sentences(lines) == [
        '"I cannot agree with you, papa; you know I cannot.',
        'Mr. Weston is such a good man."',  # continuation line joined, title kept
        "She left!",
        "Then J. Smith came? yes, he did.",  # initial kept, no split before lower case
        "Chapter 5 Within a short walk lived a family.",  # a heading joins the next sentence
        "(One more.)",
        "And \u201cthe end.\u201d",
    ]
    assert split_sentences(["", "  "]) == []


def test_pack_token_lists_greedy():
    s = [[1] * 6, [2] * 7, [3] * 5, [4] * 14, [5] * 3, [6] * 30, [7] * 4, []]
    out = pack_token_lists(s, 14)
    assert out == [[1] * 6 + [2] * 7, [3] * 5, [4] * 14, [5] * 3, [6] * 14, [6] * 14, [6] * 2 + [7] * 4]


def test_pack_sentences_hand_made(bert_tokenizer, tmp_path):
    lengths = [6, 7, 5, 14, 3, 30, 4]
    sentences = [_sentence(n, i) for i, n in enumerate(lengths)]
    ids = [bert_tokenizer(s, add_special_tokens=False)["input_ids"] for s in sentences]
    assert [len(x) for x in ids] == lengths
    text = " ".join(sentences).split(" ")  # printed lines of 5 words: sentences run across lines
    lines = [" ".join(text[i : i + 5]) for i in range(0, len(text), 5)]
    packed = pack_sentences(datasets.Dataset.from_dict({"text": lines}), bert_tokenizer, max_length=16, cache=tmp_path)
    assert packed.column_names == ["input_ids", "attention_mask", "token_type_ids", "length"]
    seqs = packed["input_ids"]
    cls, sep = bert_tokenizer.cls_token_id, bert_tokenizer.sep_token_id
    assert all(s[0] == cls and s[-1] == sep and len(s) <= 16 for s in seqs)
    assert packed["length"] == [len(s) for s in seqs]
    assert all(set(m) == {1} for m in packed["attention_mask"]) and all(set(t) == {0} for t in packed["token_type_ids"])
    body = [s[1:-1] for s in seqs]
    # whole sentences together while they fit, the 30-token sentence cut at 14 and 28
    assert body == [ids[0] + ids[1], ids[2], ids[3], ids[4], ids[5][:14], ids[5][14:28], ids[5][28:] + ids[6]]
    again = pack_sentences(datasets.Dataset.from_dict({"text": lines}), bert_tokenizer, max_length=16, cache=tmp_path)
    assert again["input_ids"] == seqs and len(list((tmp_path / "packed").glob("*.arrow"))) == 1  # cached
    pack_sentences(datasets.Dataset.from_dict({"text": lines}), bert_tokenizer, max_length=32, cache=tmp_path)
    assert len(list((tmp_path / "packed").glob("*.arrow"))) == 2  # max_length is in the key


def test_pack_sentences_errors(bert_tokenizer, tmp_path):
    with pytest.raises(AlembertError, match="only blank lines"):
        pack_sentences(datasets.Dataset.from_dict({"text": ["", " "]}), bert_tokenizer, cache=tmp_path)
    with pytest.raises(AlembertError, match="no room"):
        pack_sentences(datasets.Dataset.from_dict({"text": ["A b."]}), bert_tokenizer, max_length=2, cache=tmp_path)


# ------------------------------------------------------------------ loading


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def test_load_corpus_files_and_folders(tmp_path, bert_tokenizer):
    root = _write(
        tmp_path / "c",
        {
            "b.txt": "Second file. Two lines.\nend\n",
            "a.txt": "\ufeffFirst line.\n\nThird line\n",
            "sub/c.txt": "Nested.\n",
            "notes.md": "ignored\n",
            "empty.txt": "",
        },
    )
    ds = load_corpus(root)
    assert isinstance(ds, datasets.Dataset) and ds.column_names == ["text"]
    assert ds["text"] == [
        "First line.",
        "",
        "Third line",
        "Second file. Two lines.",
        "end",
        "Nested.",
    ]  # sorted, BOM dropped
    assert load_corpus([root / "sub" / "c.txt", str(root / "b.txt")])["text"] == [
        "Nested.",
        "Second file. Two lines.",
        "end",
    ]
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": ["One. Two.", "Three."], "id": [1, 2]}).save_to_disk(str(saved))
    assert load_corpus(saved)["text"] == ["One. Two.", "Three."]


def test_load_corpus_errors(tmp_path):
    with pytest.raises(AlembertError, match="not found"):
        load_corpus(tmp_path / "missing.txt")
    with pytest.raises(AlembertError, match="no corpus given"):
        load_corpus([])
    with pytest.raises(AlembertError, match="holds no .txt files"):
        load_corpus(_write(tmp_path / "md", {"a.md": "text\n"}))
    with pytest.raises(AlembertError, match="corpus is empty"):
        load_corpus(_write(tmp_path / "empty", {"a.txt": "", "b.txt": ""}))
    bad = _write(tmp_path / "bad", {"a.txt": "fine\n", "b.txt": b"ok\ncaf\xe9 au lait\n"})
    with pytest.raises(AlembertError, match=r"b\.txt is not UTF-8 text \(undecodable byte at offset 6\)") as e:
        load_corpus(bad)
    assert "\n" not in str(e.value)
    no_text = tmp_path / "no_text"
    datasets.Dataset.from_dict({"sentence": ["x"]}).save_to_disk(str(no_text))
    with pytest.raises(AlembertError, match="no 'text' column"):
        load_corpus(no_text)


def test_load_real_corpus_one_row_per_line():
    files = sorted(CORPUS.glob("*.txt"))
    assert [f.name for f in files] == sorted(SOURCES_LINES)
    ds = load_corpus(CORPUS)
    counts = [f.read_bytes().count(b"\n") for f in files]  # what wc -l counts
    assert counts == [SOURCES_LINES[f.name] for f in files]
    assert len(ds) == sum(counts) == 130733
    start = 0
    for f, n in zip(files, counts, strict=True):  # rows follow the files in order
        lines = f.read_text(encoding="utf-8").split("\n")
        assert ds[start]["text"] == lines[0] and ds[start + n - 1]["text"] == lines[n - 1]
        start += n


def test_pack_real_corpus_prefix(bert_tokenizer, tmp_path):
    ds = load_corpus(CORPUS / "Austen_Emma.txt").select(range(3000))  # two map batches
    packed = pack_sentences(ds, bert_tokenizer, max_length=128, cache=tmp_path)
    seqs = packed["input_ids"]
    assert all(
        len(s) <= 128 and s[0] == bert_tokenizer.cls_token_id and s[-1] == bert_tokenizer.sep_token_id for s in seqs
    )
    stream = [t for s in seqs for t in s[1:-1]]
    sentences = split_sentences(ds["text"])
    expected = [t for ids in bert_tokenizer(sentences, add_special_tokens=False)["input_ids"] for t in ids]
    assert stream == expected  # nothing lost, added or reordered
    assert sum(packed["length"]) / len(packed) > 90  # sequences are well filled
    loader_rows = packed.with_format("torch", columns=["input_ids", "attention_mask", "token_type_ids"])
    batch = MLMCollator(bert_tokenizer, seed=0)([loader_rows[i] for i in range(8)])
    assert batch["input_ids"].shape == batch["labels"].shape and batch["input_ids"].dtype == torch.long


def test_a_corpus_of_squad_training_paragraphs_glue_texts_and_files(tmp_path):
    from alembert.data.readers import glue_texts
    from alembert.data.squad import squad_paragraphs

    novel = tmp_path / "a.txt"
    novel.write_text("First line of a novel.\nSecond line.\n", encoding="utf-8")
    ds = load_corpus([novel, "squad"], transfer_tasks=["rte"])
    train, test = squad_paragraphs("train"), squad_paragraphs("test")
    rte = glue_texts("rte")
    assert ds["text"][:2] == ["First line of a novel.", "Second line."]
    assert ds["text"][2:] == train + rte and len(rte) == 2 * 2490
    assert not set(test) & set(ds["text"])  # the held-out articles' paragraphs never
    assert load_corpus("squad")["text"] == train


def test_a_squad_source_without_the_file_names_the_variable_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("ALEMBERT_SQUAD", raising=False)
    monkeypatch.chdir(tmp_path)  # neither ./shared nor ../shared here
    with pytest.raises(AlembertError, match="set ALEMBERT_SQUAD") as e:
        load_corpus(["squad"])
    assert len(str(e.value).splitlines()) == 1 and "--train-file" not in str(e.value)
