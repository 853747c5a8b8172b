"""The static sentence encoder (alembert/models/static.py): its forward pass against a hand-computed
weighted mean, and the folder it saves loaded by model2vec, sentence-transformers and alembert with
the same vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alembert.models.static import StaticEmbeddingModel, is_static_folder, load_static_model

TEXTS = ["a gripping, funny film", "the weather today is unusually cold [UNK]", "hi", "hi hi hi"]


@pytest.fixture(scope="module")
def model(bert_tokenizer):
    torch.manual_seed(0)
    vocab = len(bert_tokenizer)
    return StaticEmbeddingModel(torch.randn(vocab, 16), torch.rand(vocab) + 0.1, bert_tokenizer.all_special_ids)


def embed(model, tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(enc["input_ids"], enc["attention_mask"]).embeddings.numpy()


def test_forward_is_the_normalised_weighted_mean_of_the_non_special_tokens(model, bert_tokenizer):
    vectors, weights = model.bag.weight.detach().numpy(), model.token_weights.detach().numpy()
    specials = set(bert_tokenizer.all_special_ids)
    want = []
    for ids in bert_tokenizer(TEXTS, add_special_tokens=False)["input_ids"]:
        ids = [i for i in ids if i not in specials]  # [UNK] counts for nothing, like [CLS]/[SEP]/[PAD]
        mean = sum(weights[i] * vectors[i] for i in ids) / sum(weights[i] for i in ids)
        want.append(mean / np.linalg.norm(mean))
    got = embed(model, bert_tokenizer, TEXTS)  # padded batch, with [CLS]/[SEP]
    assert np.abs(got - np.stack(want)).max() < 1e-6
    assert np.allclose(got[2], got[3], atol=1e-6)  # a repeated token leaves the mean where it was


def test_the_saved_folder_gives_the_same_vectors_in_model2vec_sentence_transformers_and_alembert(
    model, bert_tokenizer, tmp_path
):
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

    model.save(tmp_path, bert_tokenizer)
    want = embed(model, bert_tokenizer, TEXTS)
    assert is_static_folder(tmp_path) and (tmp_path / "modules.json").is_file()
    assert oct((tmp_path / "model.safetensors").stat().st_mode & 0o777) != oct(0o600)  # not the owner's alone
    assert np.abs(StaticModel.from_pretrained(str(tmp_path)).encode(TEXTS) - want).max() < 1e-5
    assert np.abs(SentenceTransformer(str(tmp_path), device="cpu").encode(TEXTS) - want).max() < 1e-5
    again, tok = load_static_model(tmp_path)  # weights baked into the vectors: the same embeddings
    assert np.abs(embed(again, tok, TEXTS) - want).max() < 1e-5
    assert torch.all(again.token_weights == 1) and again.keep.sum() == model.keep.sum()


def test_a_transformers_folder_is_not_static(tiny_bert, tmp_path):
    from alembert.errors import AlembertError

    assert not is_static_folder(tiny_bert)
    with pytest.raises(AlembertError, match="not a static"):
        load_static_model(tiny_bert)


def test_the_teacher_map_is_saved_and_maps_the_teacher_as_before(bert_tokenizer, tmp_path):
    """The PCA the vectors came from travels with the folder (asymmetric search maps the teacher's
    documents with it); a folder naming another file for it is refused (untrusted input)."""
    import json

    from alembert.errors import AlembertError

    torch.manual_seed(1)
    vocab = len(bert_tokenizer)
    m = StaticEmbeddingModel(torch.randn(vocab, 4), None, bert_tokenizer.all_special_ids)
    m.teacher_map = (torch.randn(12), torch.linalg.qr(torch.randn(12, 4))[0].T.contiguous())
    teacher = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    m.save(tmp_path, bert_tokenizer)
    again, _ = load_static_model(tmp_path)
    want = (teacher - m.teacher_map[0].numpy()) @ m.teacher_map[1].numpy().T
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.abs(again.teacher_space(teacher) - want).max() < 1e-5
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["alembert"]["teacher_map"] = "../elsewhere.safetensors"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(AlembertError, match="teacher_map"):
        load_static_model(tmp_path)
