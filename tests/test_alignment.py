"""Teacher and student with different tokenizers: alignment check, gathering, two tokenisations."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from alembert.data.two_tokenizers import TwoTokenizerCollator, same_tokenization, tokenize_two
from alembert.distill.alignment import (
    align_positions,
    batch_alignment,
    gather_teacher,
    gather_teacher_attention,
)
from alembert.errors import AlembertError


@pytest.fixture(scope="module")
def mpnet_tokenizer(bert_tokenizer, tmp_path_factory):
    """MPNet's tokenizer, built as MPNet's vocab.txt is (``<s> <pad> </s> <unk>`` + the BERT
    vocabulary + ``<mask>``; identical to the packaged all-mpnet-base-v2 one)."""
    from transformers import MPNetTokenizer

    pieces = sorted(bert_tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    vocab = tmp_path_factory.mktemp("mpnet-tok") / "vocab.txt"
    vocab.write_text("\n".join(["<s>", "<pad>", "</s>", "<unk>", *(p for p, _ in pieces), "<mask>"]) + "\n")
    return MPNetTokenizer(vocab=str(vocab))


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    """A BERT tokenizer with a 12-word vocabulary: most words become [UNK]."""
    from transformers import BertTokenizer

    vocab = tmp_path_factory.mktemp("tiny-tok") / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "film", "the", "is", "bad", "."]) + "\n"
    )
    return BertTokenizer(vocab=str(vocab))


def collate(teacher, student, texts_a, texts_b=None):
    ds = Dataset.from_dict({"text_a": texts_a, **({"text_b": texts_b} if texts_b else {})})
    rows = tokenize_two(ds, teacher, student, max_length=64)
    return TwoTokenizerCollator(teacher, student)([rows[i] for i in range(len(rows))])


def test_same_tokenization(bert_tokenizer, mpnet_tokenizer, tiny_tokenizer):
    assert same_tokenization(bert_tokenizer, bert_tokenizer)
    assert not same_tokenization(mpnet_tokenizer, bert_tokenizer)
    assert not same_tokenization(bert_tokenizer, tiny_tokenizer)


def test_single_sentence_aligns_every_position(bert_tokenizer, mpnet_tokenizer):
    text = "An unaffable, naïve film."
    t, s = mpnet_tokenizer(text)["input_ids"], bert_tokenizer(text)["input_ids"]
    assert [i - 4 for i in t[1:-1]] == s[1:-1]  # MPNet id = BERT id + 4
    assert align_positions(t, s, mpnet_tokenizer, bert_tokenizer) == (list(range(len(s))), list(range(len(s))))


def test_pair_maps_double_separator_onto_single(bert_tokenizer, mpnet_tokenizer):
    t = mpnet_tokenizer("the cat sat", "on a mat")["input_ids"]  # <s> the cat sat </s> </s> on a mat </s>
    s = bert_tokenizer("the cat sat", "on a mat")["input_ids"]  # [CLS] the cat sat [SEP] on a mat [SEP]
    t_index, s_index = align_positions(t, s, mpnet_tokenizer, bert_tokenizer)
    assert s_index == list(range(9))
    assert t_index == [0, 1, 2, 3, 4, 6, 7, 8, 9]  # student [SEP] -> first </s>; the second </s> is skipped


def test_batch_alignment_strict_gathers_teacher_positions(bert_tokenizer, mpnet_tokenizer):
    batch = collate(mpnet_tokenizer, bert_tokenizer, ["a good film", "the cat sat here"], ["fine", "on the mat"])
    aligned = batch_alignment(batch, mpnet_tokenizer, bert_tokenizer)
    assert torch.equal(aligned.mask, batch["attention_mask"])  # every real student position aligns
    picked = batch["teacher_input_ids"].gather(1, aligned.teacher_index)
    real = aligned.mask.bool()
    tok_t = mpnet_tokenizer.convert_ids_to_tokens(picked[real].tolist())
    tok_s = bert_tokenizer.convert_ids_to_tokens(batch["input_ids"][real].tolist())
    norm = {"<s>": "[CLS]", "</s>": "[SEP]"}
    assert [norm.get(p, p) for p in tok_t] == tok_s


def test_misaligned_batch_raises_with_count_and_cls_fallback(mpnet_tokenizer, tiny_tokenizer):
    batch = collate(
        mpnet_tokenizer, tiny_tokenizer, ["a good film.", "an unaffable movie", "the film is bad", "really great"]
    )
    with pytest.raises(AlembertError, match=r"2 of the batch's 4 examples.*logit losses only, or mode cls"):
        batch_alignment(batch, mpnet_tokenizer, tiny_tokenizer, mode="strict")
    fallback = batch_alignment(batch, mpnet_tokenizer, tiny_tokenizer, mode="cls")
    expected = torch.zeros_like(fallback.mask)
    expected[:, 0] = 1
    assert torch.equal(fallback.mask, expected) and torch.equal(fallback.teacher_index, torch.zeros_like(expected))
    with pytest.raises(AlembertError, match="unknown alignment mode"):
        batch_alignment(batch, mpnet_tokenizer, tiny_tokenizer, mode="loose")


def test_altered_ids_do_not_align(bert_tokenizer, mpnet_tokenizer):
    t, s = mpnet_tokenizer("a good film")["input_ids"], bert_tokenizer("a good film")["input_ids"]
    assert align_positions(t, s[:2] + [s[2] + 1] + s[3:], mpnet_tokenizer, bert_tokenizer) is None
    assert align_positions(t, s[:-1], mpnet_tokenizer, bert_tokenizer) is None


def test_gather_teacher_hidden_and_attention():
    hidden = torch.arange(2 * 5 * 3, dtype=torch.float).view(2, 5, 3)
    index = torch.tensor([[0, 1, 3], [0, 4, 0]])
    out = gather_teacher(hidden, index)
    assert out.shape == (2, 3, 3)
    assert torch.equal(out[0, 2], hidden[0, 3]) and torch.equal(out[1, 1], hidden[1, 4])
    attn = torch.rand(2, 4, 5, 5)
    got = gather_teacher_attention(attn, index)
    assert got.shape == (2, 4, 3, 3)
    for b in range(2):
        assert torch.equal(got[b], attn[b][:, index[b]][:, :, index[b]])


def test_tokenize_two_columns_and_collator_pads_each_side(bert_tokenizer, mpnet_tokenizer, tmp_path):
    ds = Dataset.from_dict({"text_a": ["good", "the worst film of the year"], "text_b": ["yes", "no"], "label": [1, 0]})
    rows = tokenize_two(ds, mpnet_tokenizer, bert_tokenizer, max_length=8, cache=tmp_path)
    assert set(rows.column_names) == {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "labels",
        "length",
        "teacher_input_ids",
        "teacher_attention_mask",
    }
    assert max(len(r) for r in rows["teacher_input_ids"]) == 8 and max(rows["length"]) == 8  # same truncation
    assert list(tmp_path.glob("tokenized/two-*.arrow"))
    batch = TwoTokenizerCollator(mpnet_tokenizer, bert_tokenizer)([rows[0], rows[1]])
    assert batch["labels"].tolist() == [1, 0] and "length" not in batch
    short_s, short_t = batch["input_ids"][0], batch["teacher_input_ids"][0]
    assert short_s[-1] == bert_tokenizer.pad_token_id == 0
    assert short_t[-1] == mpnet_tokenizer.pad_token_id == 1
    assert batch["attention_mask"][0].sum() == rows["length"][0]
    assert batch["teacher_attention_mask"][0].sum() == len(rows["teacher_input_ids"][0])


def test_truncated_pairs_align_when_teacher_gets_one_more_place(bert_tokenizer, mpnet_tokenizer, tmp_path):
    ds = Dataset.from_dict({"text_a": ["the cat sat on the mat all day"], "text_b": ["a dog barked at it"]})
    for extra, expected in ((0, False), (1, True)):
        rows = tokenize_two(
            ds, mpnet_tokenizer, bert_tokenizer, max_length=10, cache=tmp_path, teacher_max_length=10 + extra
        )
        pairs = align_positions(rows["teacher_input_ids"][0], rows["input_ids"][0], mpnet_tokenizer, bert_tokenizer)
        assert (pairs is not None) is expected
