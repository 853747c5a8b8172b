"""Exports and measurements of static models (alembert/export/static.py): one ONNX graph whose
weighted mean and normalisation give PyTorch's vectors, for a folder alembert saved and one that
``model2vec.distill`` wrote; its int8 table through ``evaluate``; ``bench`` rows with the table's
size and parameter count counted once."""

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import run_cli
from test_embedding_export import st_folder

from alembert.embedding.evaluate import evaluate_embedding
from alembert.errors import AlembertError
from alembert.export.onnx import export_onnx
from alembert.measure.size import count_embedding_params, disk_mb, static_table
from alembert.models.static import StaticEmbeddingModel, load_static_model
from alembert.runtimes import load_any_embedding, runtime_for
from alembert.runtimes.onnxruntime import OnnxEmbedder

TEXTS = [
    "a cat sat on the mat",
    "the weather is nice today, or so the forecast said this morning",
    "ok",
    "[UNK] [SEP] stocks fell sharply on monday",  # special tokens inside the text count for nothing either
    "a man is playing a guitar",
]
DIM = 16
pytestmark = pytest.mark.export  # the module's fixture exports a graph


def random_static(path, tokenizer, seed: int = 0):
    """A static folder alembert saved: random vectors and weights over the BERT vocabulary."""
    torch.manual_seed(seed)
    vocab = len(tokenizer)
    model = StaticEmbeddingModel(torch.randn(vocab, DIM), torch.rand(vocab) + 0.05, tokenizer.all_special_ids)
    model.save(path, tokenizer)
    return path


def distilled_static(path, encoder):
    """A folder model2vec itself wrote: ``model2vec.distill`` of a tiny sentence-transformers model
    (its own tokenizer.json: no post-processor, [unused] tokens removed; float16 vectors)."""
    from model2vec.distill import distill

    st = st_folder(path.with_name(path.name + "-st"), encoder, "mean", True)
    distill(str(st), pca_dims=DIM, device="cpu").save_pretrained(str(path))
    return path


@pytest.fixture(autouse=True)
def _caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "alembert-cache"
    monkeypatch.setenv("ALEMBERT_CACHE", str(cache))
    monkeypatch.setenv("MPLCONFIGDIR", str(cache / "matplotlib"))


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory, bert_tokenizer):
    return random_static(tmp_path_factory.mktemp("static") / "student", bert_tokenizer)


@pytest.fixture(scope="module")
def m2v_dir(tmp_path_factory, tiny_bert):
    return distilled_static(tmp_path_factory.mktemp("m2v") / "m2v", tiny_bert)


@pytest.fixture(scope="module")
def static_fp32(static_dir, tmp_path_factory):
    return export_onnx(static_dir, tmp_path_factory.mktemp("static-exports") / "fp32")


def torch_vectors(folder, texts):
    model, tok = load_static_model(folder)
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(enc["input_ids"], enc["attention_mask"]).embeddings.numpy()


def assert_matches_torch(src, out, atol=1e-4):
    """The same tolerance as the sentence-transformers exports (tests/test_embedding_export.py)."""
    onnx_model, tok = load_any_embedding(out, threads=1)
    assert isinstance(onnx_model, OnnxEmbedder) and onnx_model.config is None  # no transformers config to read
    for texts in (TEXTS, TEXTS[1:2] * 3, TEXTS[2:3]):  # batch 5 padded, batch 3 of one length, batch 1
        enc = tok(texts, padding=True, return_tensors="pt")
        got = onnx_model(**enc).embeddings.numpy()
        want = torch_vectors(src, texts)
        assert got.shape == want.shape == (len(texts), DIM)
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)
        assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_fp32_graph_matches_torch_and_records_the_static_model(static_dir, static_fp32, bert_tokenizer):
    assert_matches_torch(static_dir, static_fp32)
    info = json.loads((static_fp32 / "alembert_export.json").read_text())
    assert (info["format"], info["kind"], info["static"], info["quantization"]) == ("onnx", "embedding", True, None)
    assert (info["dim"], info["vocab_size"], info["normalize"]) == (DIM, len(bert_tokenizer), True)
    assert info["special_ids"] == sorted(bert_tokenizer.all_special_ids)
    assert info["max_abs_diff_vs_torch"] < 1e-5 and info["min_cosine_vs_torch"] > 0.99999
    assert runtime_for(static_fp32).format == "onnx" and not (static_fp32 / "modules.json").exists()
    graph = onnx.load(static_fp32 / "model.onnx").graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["sentence_embedding"]
    ops = [n.op_type for n in graph.node]
    assert ops.count("Gather") == 2 and "GatherND" not in ops  # the table and the weights, looked up by id
    table = next(t for t in graph.initializer if t.name == "table")
    assert list(table.dims) == [len(bert_tokenizer), DIM]


@pytest.mark.cli
def test_a_folder_model2vec_wrote_exports_and_matches_torch(m2v_dir, tmp_path, capsys):
    """model2vec's folder is a sentence-transformers folder too (modules.json: StaticEmbedding): the
    static export takes it, not the sentence-transformers one (whose reader refuses that module)."""
    code, out, err = run_cli(["export", m2v_dir, "--onnx", "--output", tmp_path / "onnx"], capsys)
    assert code == 0, err
    assert "static: a " in out and f"x {DIM} token table" in out and "weighted mean pooling" in out
    assert_matches_torch(m2v_dir, tmp_path / "onnx")
    model2vec_config = json.loads((m2v_dir / "config.json").read_text())
    assert json.loads((tmp_path / "onnx" / "config.json").read_text()) == model2vec_config


@pytest.mark.cli
def test_int8_table_is_smaller_and_evaluates_with_the_same_command(static_dir, static_fp32, tmp_path, capsys):
    int8 = tmp_path / "int8"
    code, out, err = run_cli(["export", static_dir, "--onnx", "--quantize", "int8", "--output", int8], capsys)
    assert code == 0, err
    graph = onnx.load(int8 / "model.onnx").graph
    quantised = {t.name: t for t in graph.initializer}
    eight_bits = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)  # onnxruntime keeps a Gather's table as uint8
    assert quantised["table_quantized"].data_type in eight_bits and "table" not in quantised
    assert "DequantizeLinear" in {n.op_type for n in graph.node}
    assert (int8 / "model.onnx").stat().st_size < 0.3 * (static_fp32 / "model.onnx").stat().st_size
    info = json.loads((int8 / "alembert_export.json").read_text())
    assert info["quantization"] == "int8" and "Gather" in info["int8"] and info["min_cosine_vs_torch"] > 0.99
    figures = {}
    for name, folder in (("fp32", static_fp32), ("int8", int8)):
        code, _, err = run_cli(
            ["evaluate", folder, "--task", "stsb-zeroshot", "--max-length", 64, "--output", tmp_path / name], capsys
        )
        assert code == 0, err
        figures[name] = json.loads((tmp_path / name / "eval_results.json").read_text())["spearman"]
    model, tok = load_static_model(static_dir)
    want = evaluate_embedding(model, tok, "stsb-zeroshot", 64, 64)["spearman"]
    assert figures["fp32"] == pytest.approx(want, abs=1e-4)  # the same vectors, through the ONNX runtime
    assert abs(figures["int8"] - figures["fp32"]) < 0.02


@pytest.mark.cli
def test_bench_counts_the_table_once(static_dir, static_fp32, tmp_path, capsys):
    """The parameter count is the table's (none outside the embeddings); the size on disk is the one
    model.safetensors that model2vec and the PyTorch runtime read (sentence-transformers' copy in
    0_StaticEmbedding/ is not counted again), and the export's graph."""
    vocab = static_table(static_dir).vocab_size
    for folder in (static_dir, static_fp32):
        assert (static_table(folder).vocab_size, static_table(folder).hidden_size) == (vocab, DIM)
    assert count_embedding_params(static_dir) == count_embedding_params(static_fp32) == (vocab * DIM, 0)
    assert disk_mb(static_dir) == pytest.approx((static_dir / "model.safetensors").stat().st_size / 1e6)
    assert disk_mb(static_fp32) == pytest.approx((static_fp32 / "model.onnx").stat().st_size / 1e6)
    out = tmp_path / "bench"
    code, printed, err = run_cli(
        [
            "bench",
            static_fp32,
            static_dir,
            "--task",
            "stsb-zeroshot",
            "--max-eval-samples",
            100,
            "--repeats",
            2,
            "--threads",
            1,
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads((out / "bench.json").read_text())
    onnx_row, torch_row = result["models"]
    assert [onnx_row["kind"], torch_row["kind"]] == ["onnx-fp32", "pytorch"]
    for row in result["models"]:
        assert (row["params"], row["params_no_embeddings"]) == (vocab * DIM, 0)
        assert row["throughput_seq_s"] > 0 and row["latency_ms_p90"] >= row["latency_ms_median"] > 0
    assert torch_row["disk_mb"] == pytest.approx(disk_mb(static_dir), abs=0.01)
    assert torch_row["dev_metric"] == pytest.approx(onnx_row["dev_metric"], abs=1e-4)  # the same vectors


def test_static_folders_are_refused_where_they_cannot_go(static_dir, static_fp32, tmp_path):
    with pytest.raises(AlembertError, match="a static model .* pass --quantize int8"):
        export_onnx(static_dir, tmp_path / "auto", quantize="auto")
    with pytest.raises(AlembertError, match="already an ONNX export"):
        export_onnx(static_fp32, tmp_path / "again")
    assert not (tmp_path / "auto").exists() and not (tmp_path / "again").exists()
