"""benchmarks/static_peer.py end to end on tiny models: a tiny sentence-transformers teacher, a random
static student, model2vec.distill of the teacher made by the script, all scored and timed in one table."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, save_tiny
from test_embedding_export import st_folder
from test_static_export import DIM, random_static

pytestmark = pytest.mark.cli


def test_peer_script_scores_and_times_every_variant(tmp_path, tiny_bert, bert_tokenizer):
    teacher = st_folder(tmp_path / "teacher", tiny_bert, "mean", True)
    student = random_static(tmp_path / "static-16", bert_tokenizer)
    layered = st_folder(tmp_path / "layered", save_tiny(tmp_path / "two", bert_tokenizer, layers=2), "mean", True)
    out = tmp_path / "out"
    env = {**os.environ, "ALEMBERT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    argv = [
        sys.executable,
        str(REPO / "benchmarks" / "static_peer.py"),
        "--teacher",
        teacher,
        "--students",
        student,
        "--layer-student",
        layered,
        "--max-pairs",
        40,
        "--max-questions",
        20,
        "--max-length",
        32,
        "--speed-sentences",
        40,
        "--repeats",
        1,
        "--output",
        out,
    ]
    proc = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "static_peer.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ["teacher", "static-16", f"model2vec-{DIM}", "layered"]
    assert [r["kind"] for r in report["rows"]] == [
        "teacher",
        "alembert static student",
        "model2vec.distill",
        "layered student",
    ]
    assert rows[f"model2vec-{DIM}"]["dim"] == rows["static-16"]["dim"] == DIM  # pca_dims: the student's width
    from model2vec import StaticModel

    assert StaticModel.from_pretrained(report["peers"]["model2vec"]["folder"]).dim == DIM
    for r in report["rows"]:
        assert set(r["squad-retrieval"]) >= {"recall@1", "mrr@10"} and -1 <= r["stsb-zeroshot"]["spearman"] <= 1
        assert r["sent_s_b32"] > 0 and r["sent_s_b1"] > 0 and r["disk_mb"] > 0
        assert ("model2vec_sent_s_b32" in r) == r["static"]  # the static folders also in model2vec's runtime
    assert report["rows"][0]["speedup_b32"] == 1.0
    # the same code scores every variant: the student's figure is alembert's evaluation of its folder
    from alembert.embedding.evaluate import evaluate_embedding
    from alembert.models.static import load_static_model

    model, tok = load_static_model(student)
    assert rows["static-16"]["stsb-zeroshot"] == evaluate_embedding(model, tok, "stsb-zeroshot", 32, 128, max_pairs=40)
    assert report["tokenlearn"] is None or "transformers<5.4" in report["tokenlearn"]
    md = (out / "static_peer.md").read_text()
    assert md.count("\n| ") == 1 + len(rows) and "model2vec.distill of" in md


def test_tokenlearns_pad_lookup_is_given_the_id_it_pads_with(bert_tokenizer):
    """tokenlearn 0.2.1 masks ``token_to_id("[PAD]")`` and pads with id 0: the view gives it 0 where
    they differ (model2vec's MPNet tokenizer: "<pad>" 0, "[PAD]" 1), and refuses when id 0 is a word."""
    import importlib.util

    from conftest import REPO
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import WordLevel

    spec = importlib.util.spec_from_file_location("static_peer", REPO / "benchmarks" / "static_peer.py")
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)

    bert = bert_tokenizer.backend_tokenizer  # [PAD] is 0: nothing to change
    assert not peer.PadIsZero.needed(bert)
    mpnet_like = Tokenizer(WordLevel({"<pad>": 0, "[PAD]": 1, "cat": 2}, unk_token="cat"))
    mpnet_like.add_special_tokens([AddedToken("<pad>", special=True)])
    assert peer.PadIsZero.needed(mpnet_like)
    view = peer.PadIsZero(mpnet_like)
    assert view.token_to_id("[PAD]") == 0 and view.token_to_id("cat") == 2 and view.get_vocab_size() == 3
    import copy

    copied = copy.deepcopy(view)  # model2vec's StaticModel copies the tokenizer it is given
    assert copied.token_to_id("[PAD]") == 0 and copied.get_vocab_size() == 3
    word_first = Tokenizer(WordLevel({"cat": 0, "[PAD]": 1}, unk_token="cat"))
    with pytest.raises(SystemExit, match="'cat'"):
        peer.PadIsZero.needed(word_first)
