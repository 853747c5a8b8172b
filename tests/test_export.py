"""ONNX export of a tiny random BERT: logits match PyTorch, int8 keeps the labels,
the CLI runs exports through evaluate/predict, and bad inputs fail in one line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from alembert.cli.main import main
from alembert.errors import AlembertError
from alembert.export.onnx import export_onnx
from alembert.models.resolve import resolve_model
from alembert.runtimes import load_any
from alembert.runtimes.onnxruntime import OnnxClassifier, OnnxRuntime

DATA = Path(__file__).resolve().parents[2] / "shared/data/glue_data"
SENTENCES = ["a great film", "the worst two hours I have spent in a cinema, with a dull ending", "ok", "fine, I guess"]


def make_tiny_model(folder: Path) -> Path:
    """A 2-layer, hidden-32 random BERT classifier with SST-2 label names, plus a real tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "alembert-cache"
    monkeypatch.setenv("ALEMBERT_CACHE", str(cache))
    monkeypatch.setenv("MPLCONFIGDIR", str(cache / "matplotlib"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return export_onnx(tiny, root / "fp32"), export_onnx(tiny, root / "int8", quantize="int8")


@pytest.mark.export
def test_fp32_logits_match_torch_on_two_shapes(tiny, exported):
    fp32, _ = exported
    torch_model = BertForSequenceClassification.from_pretrained(tiny).eval()
    onnx_model = OnnxClassifier(fp32, threads=1)
    tokenizer = AutoTokenizer.from_pretrained(fp32)
    for texts in (SENTENCES, SENTENCES[1:2] * 3):  # batch 4 x seq n, batch 3 x seq m
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            want = torch_model(**enc).logits.numpy()
        got = onnx_model(**enc).logits.numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    info = json.loads((fp32 / "alembert_export.json").read_text())
    assert info["quantization"] is None and info["max_abs_diff_vs_torch"] < 1e-4
    assert info["attention"] == "sdpa" and info["opset"] == 23 and info["ort_optimized"] is True
    assert info["last_layer"] == "first token only"
    assert set(info["inputs"]) == {"input_ids", "attention_mask", "token_type_ids"}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_first_token_last_layer_keeps_the_logits(tiny, attn):
    from alembert.export.first_token import FirstTokenLayer, first_token_last_layer

    reference = BertForSequenceClassification.from_pretrained(tiny, attn_implementation=attn).eval()
    pruned = BertForSequenceClassification.from_pretrained(tiny, attn_implementation=attn).eval()
    assert first_token_last_layer(pruned) and isinstance(pruned.bert.encoder.layer[-1], FirstTokenLayer)
    enc = AutoTokenizer.from_pretrained(tiny)(SENTENCES, padding=True, return_tensors="pt")  # padded rows included
    with torch.no_grad():
        want, got = reference(**enc).logits, pruned(**enc)
    assert got.hidden_states is None and pruned.bert(**enc).last_hidden_state.shape[1] == 1  # one position left
    torch.testing.assert_close(got.logits, want, atol=1e-6, rtol=0)


@pytest.mark.export
def test_full_last_layer_export_matches_too(tiny, tmp_path):
    out = export_onnx(tiny, tmp_path / "full", first_token=False)
    info = json.loads((out / "alembert_export.json").read_text())
    assert info["last_layer"] == "all tokens" and info["max_abs_diff_vs_torch"] < 1e-4


@pytest.mark.cli
def test_int8_keeps_labels_and_is_smaller(exported, capsys):
    fp32, int8 = exported
    assert OnnxRuntime().probe(int8) and not list(int8.glob("*fp32*"))
    info = json.loads((int8 / "alembert_export.json").read_text())
    assert info["quantization"] == "int8"
    import onnx

    ops = {n.op_type for n in onnx.load(int8 / "model.onnx").graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops  # every weight MatMul runs in int8
    assert json.loads((int8 / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size
    model = load_any(int8)
    assert isinstance(model, OnnxClassifier) and model.config.id2label[1] == "positive"
    assert main(["predict", str(int8), "a wonderful, moving film"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] in ("label: negative", "label: positive") and len(out) == 3


@pytest.mark.cli
def test_evaluate_accepts_an_export(tiny, exported, tmp_path, capsys):
    accuracy = {}
    for name, model in (("onnx", exported[0]), ("torch", tiny)):  # the export scores what its source scores
        argv = ["evaluate", str(model), "--task", "sst2", "--data-dir", str(DATA), "--max-eval-samples", "16"]
        assert main([*argv, "--output", str(tmp_path / name)]) == 0
        accuracy[name] = json.loads((tmp_path / name / "eval_results.json").read_text())["accuracy"]
    assert accuracy["onnx"] == accuracy["torch"]


@pytest.mark.cli
def test_cli_export_refuses_non_empty_output_then_overwrites(tiny, tmp_path, capsys):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["export", str(tiny), "--onnx", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and err.count("\n") == 1
    assert main(["export", str(tiny), "--onnx", "--output", str(out), "--overwrite"]) == 0
    # issue 20 item 1: --overwrite replaces the export's own files only; the user's keep.txt stays
    assert OnnxRuntime().probe(out) and (out / "keep.txt").read_text() == "x"
    assert not [p for p in [*tmp_path.iterdir(), *out.iterdir()] if p.name.startswith(".")]  # no temp folder left


@pytest.mark.parametrize("argv", [["export", "{dir}", "--onnx", "--output", "{out}"], ["predict", "{dir}", "text"]])
@pytest.mark.cli
def test_non_model_folder_is_a_one_line_error(argv, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    argv = [a.format(dir=tmp_path, out=tmp_path / "out") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json" in err and err.count("\n") == 1


def test_base_encoder_without_head_is_refused(tmp_path):
    tiny = make_tiny_model(tmp_path / "m")
    config = json.loads((tiny / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (tiny / "config.json").write_text(json.dumps(config))
    with pytest.raises(AlembertError, match="no classification head"):
        export_onnx(tiny, tmp_path / "out")


@pytest.mark.export
def test_mpnet_exports_its_eager_attention_and_matches_torch(tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, MPNetTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "a", "great", "film", "ok", "<mask>"]) + "\n")
    tokenizer = MPNetTokenizer(vocab=str(vocab))
    config = AutoConfig.for_model(
        "mpnet",
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    model.save_pretrained(tmp_path / "mpnet")
    tokenizer.save_pretrained(tmp_path / "mpnet")
    out = export_onnx(tmp_path / "mpnet", tmp_path / "onnx")
    info = json.loads((out / "alembert_export.json").read_text())
    assert info["attention"] == "eager" and info["ort_optimized"] is False and info["last_layer"] == "all tokens"
    enc = tokenizer(["a great film", "ok"], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).logits.numpy()
    got = OnnxClassifier(out, threads=1)(**enc).logits.numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
