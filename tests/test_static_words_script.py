"""benchmarks/static_words.py on a tiny teacher: the words it adds are single tokens, the rest of the
vocabulary tokenises as before, an added word's vector is the teacher's embedding of the word under
the saved PCA, and model2vec reads the folder to the same vectors."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from conftest import REPO
from test_embedding_export import st_folder

from alembert.models.sentence import load_embedding_model
from alembert.models.static import load_static_model

TEXTS = [f"The Huguenots fled to Wittenberg {i}." for i in range(3)] + [f"Huguenots and Normans {i}" for i in range(3)]
TEXTS += ["a cat sat", "the Normans"]  # huguenots 6 times, normans 4, wittenberg 3: all split by BERT's vocabulary


def script():
    spec = importlib.util.spec_from_file_location("static_words", REPO / "benchmarks" / "static_words.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_bert):
    base = tmp_path_factory.mktemp("words")
    teacher = st_folder(base / "teacher", tiny_bert, "mean", True)
    (base / "texts.txt").write_text("\n".join(TEXTS) + "\n")
    out = base / "out"
    argv = ["--teacher", str(teacher), "--dim", "8", "--words", "2", "--min-count", "3"]
    assert script().main([*argv, "--corpus", str(base / "texts.txt"), "--output", str(out)]) == 0
    return teacher, out


def test_added_words_are_single_tokens_and_the_rest_tokenises_as_before(built):
    teacher, out = built
    _, old = load_embedding_model(teacher)
    model, new = load_static_model(out)
    report = json.loads((out / "alembert_words.json").read_text())
    assert report["words_added"] == 2  # --words 2: the two most frequent
    assert new.tokenize("the Huguenots, Normans") == ["the", "huguenots", ",", "normans"]
    assert new.tokenize("wittenberg") == old.tokenize("wittenberg") and len(old.tokenize("wittenberg")) > 1
    assert new("a cat sat")["input_ids"] == old("a cat sat")["input_ids"]
    assert model.vocab_size == len(old) + 2


def test_an_added_words_vector_is_the_teachers_embedding_of_it_under_the_pca(built):
    teacher, out = built
    embedder, old = load_embedding_model(teacher)
    model, new = load_static_model(out)
    enc = old(["huguenots"], return_tensors="pt")
    with torch.inference_mode():
        emb = embedder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).embeddings[0].numpy()
    mean, components = (t.numpy() for t in model.teacher_map)
    expected = (emb - mean) @ components.T
    row = model.bag.weight[new.convert_tokens_to_ids("huguenots")].detach().numpy()  # saved = vector x SIF weight
    cosine = row @ expected / (np.linalg.norm(row) * np.linalg.norm(expected))
    assert cosine == pytest.approx(1.0, abs=1e-5)


def test_model2vec_reads_the_word_folder_to_the_same_vectors(built):
    from model2vec import StaticModel

    _, out = built
    model, tok = load_static_model(out)
    texts = ["the huguenots sat", "a cat"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ours = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).embeddings.numpy()
    np.testing.assert_allclose(StaticModel.from_pretrained(str(out)).encode(texts), ours, atol=1e-5)


def test_an_existing_output_is_refused(built):
    teacher, out = built
    with pytest.raises(SystemExit, match="exists"):
        script().main(["--teacher", str(teacher), "--output", str(out)])
