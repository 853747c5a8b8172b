"""``alembert export --openvino``: an OpenVINO IR folder (format ``openvino``) that ``evaluate``,
``bench``, ``predict`` and the API run through :mod:`alembert.runtimes.openvino`.

The IR is read from the graph the ONNX export builds (OpenVINO's ONNX front end takes it as it
is, onnxruntime's fused operators included), so what that export does for speed carries over
with no second implementation: the [CLS]-only last layer of BERT classifiers, pooling, Dense and
normalisation inside an embedding model's graph, a static model's weighted mean. Then, by
``quantize``:

- ``None``: the fp32 IR, computed in f32 (recorded: OpenVINO would pick bf16 on its own on CPUs
  with AVX512-BF16 or AMX);
- ``"int8"``: NNCF's post-training quantisation (``model_type=TRANSFORMER``: SmoothQuant, fast bias
  correction; fixed activation scales, so a sentence's output does not depend on its batch),
  calibrated on :data:`CALIBRATION_TEXTS` real training texts: the task's own for a classifier
  (``--task``/``--train-file`` where none is saved), STS-B's training sentences for an embedding
  model (or ``--train-file``);
- ``"bf16"``: the fp32 IR computed in bf16, only where the CPU has AVX512-BF16 or AMX (elsewhere
  OpenVINO would emulate it, slower than fp32: refused).

The folder is written through the staged folder like every export (complete or as it was), and
checked against the PyTorch source on real sentences before it is moved into place.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
from pathlib import Path

from alembert.errors import AlembertError
from alembert.export.graph import agreement, reference_outputs
from alembert.export.staging import EXPORT_INFO, check_output, staged_folder
from alembert.files import write_json_atomic
from alembert.machine import cpu_facts, has_bf16
from alembert.runtimes.openvino import IR_FILE, OpenVinoRuntime, OvModel, require_openvino

QUANTIZATIONS = (None, "int8", "bf16")
CALIBRATION_TEXTS = 300  # NNCF's default subset size
# what the ONNX record says of the graph itself, carried into the OpenVINO record
CARRIED = (
    "kind",
    "static",
    "pooling",
    "dense",
    "normalize",
    "dim",
    "vocab_size",
    "max_seq_length",
    "inputs",
    "outputs",
    "dynamic_axes",
    "attention",
    "last_layer",
)


def export_openvino(
    model_dir: str | Path,
    out_dir: str | Path,
    quantize: str | None = None,
    overwrite: bool = False,
    first_token: bool = True,
    opset: int | None = None,
    data: dict | None = None,
) -> Path:
    """Export ``model_dir`` (a fine-tuned classifier, a sentence-transformers folder or a static
    folder) to the OpenVINO folder ``out_dir``; returns ``out_dir``. ``data``: ``task``, ``data_dir``,
    ``train_file``, ``text_column``: where int8's calibration texts come from."""
    from alembert.export.onnx import export_onnx
    from alembert.models.resolve import resolve_model

    if quantize not in QUANTIZATIONS:
        raise AlembertError(f"--openvino --quantize {quantize}: use int8, bf16 or none")
    require_openvino()
    if quantize == "int8":
        try:
            import nncf  # noqa: F401
        except ImportError:
            raise AlembertError("--openvino --quantize int8 needs NNCF: pip install 'alembert[openvino]'") from None
    facts = cpu_facts()
    if quantize == "bf16" and not has_bf16(facts):
        raise AlembertError(
            "--quantize bf16: this CPU has neither AVX512-BF16 nor AMX, so OpenVINO would emulate bf16 "
            "(slower than fp32); use --quantize int8 or none"
        )
    out_dir = Path(out_dir).absolute()
    check_output(out_dir, None, overwrite)
    src = resolve_model(model_dir)
    check_output(out_dir, src, overwrite)
    with staged_folder(out_dir, overwrite, 4 * _weights_bytes(src)) as tmp:
        graph_dir = tmp / "onnx-graph"  # the ONNX export's folder, read by OpenVINO, then dissolved
        export_onnx(src, graph_dir, None, opset, False, first_token)
        record = json.loads((graph_dir / EXPORT_INFO).read_text())
        batches = _calibration(src, record, graph_dir, data) if quantize == "int8" else None
        graph = write_ir(graph_dir / "model.onnx", tmp, quantize, batches)
        for f in graph_dir.iterdir():  # tokenizer, config, module description: the export's own files stay
            if f.name not in ("model.onnx", "model.onnx.data", EXPORT_INFO, "README.md"):
                os.replace(f, tmp / f.name)
        shutil.rmtree(graph_dir)
        precision = graph["precision"]
        info = {
            "format": OpenVinoRuntime.format,
            "source": str(Path(src).resolve()),
            **{k: record[k] for k in CARRIED if k in record},
            "quantization": quantize,
            "variant": quantize or "fp32",
            "precision": precision,
            "onnx_opset": record.get("opset"),
            "int8": graph["int8"],
            **_check(tmp / IR_FILE, src, record, precision),
            "machine": facts,
            "versions": graph["versions"],
            "files": sorted({f.name for f in tmp.iterdir()} | {EXPORT_INFO, "README.md"}),
        }
        _write_card(tmp, info)
        write_json_atomic(tmp / EXPORT_INFO, info)
    return out_dir


def _weights_bytes(src: Path) -> int:
    return sum(f.stat().st_size for f in Path(src).rglob("*.safetensors")) or 1 << 20


def openvino_versions(quantize: str | None = "int8") -> dict:
    """The OpenVINO version an export was made with, and NNCF's when it quantised (the export record)."""
    versions = {"openvino": OpenVinoRuntime().version()}
    if quantize == "int8":
        import nncf

        versions["nncf"] = nncf.__version__
    return versions


INT8_NNCF = (
    "NNCF post-training quantisation (model_type TRANSFORMER: SmoothQuant, fast bias correction), "
    "static activation scales from {texts} texts"
)


def nncf_int8(model, batches: list[dict]):
    """The OpenVINO ``model`` quantised to int8 by NNCF (``model_type`` TRANSFORMER: SmoothQuant, fast bias
    correction), static activation scales from every batch of ``batches``; NNCF's logs and progress bars kept
    out of alembert's output."""
    import nncf

    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return nncf.quantize(
            model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches)
        )


def write_ir(onnx_graph: Path, folder: Path, quantize: str | None, batches: list[dict] | None = None) -> dict:
    """``folder/openvino_model.xml`` (+ ``.bin``) from the ONNX graph: fp32 weights, NNCF int8 calibrated on
    ``batches`` (tokenised texts) for ``"int8"``; ``"bf16"`` keeps fp32 weights and records the precision
    the CPU computes in. Returns the graph's record (quantization, int8, precision, the libraries that
    made it): what ``export --openvino`` and ``--quantize auto``'s OpenVINO candidates write."""
    ov = require_openvino()
    model = ov.convert_model(onnx_graph)
    texts = None
    if quantize == "int8":
        if not batches:
            raise AlembertError("no texts to calibrate int8 with")
        texts = sum(len(b["input_ids"]) for b in batches)
        model = nncf_int8(model, batches)
    ov.save_model(model, folder / IR_FILE, compress_to_fp16=False)
    return {
        "quantization": quantize,
        "int8": INT8_NNCF.format(texts=texts) if texts else None,
        "precision": "bf16" if quantize == "bf16" else "f32",
        "versions": openvino_versions(quantize),
    }


def _calibration(src: Path, record: dict, graph_dir: Path, data: dict | None) -> list[dict]:
    """int8's calibration batches: an embedding model's texts, or a classifier's training texts."""
    from alembert.models.load import load_tokenizer

    tokenizer = load_tokenizer(graph_dir)
    names = record["inputs"]
    if record.get("kind") == "embedding":
        return _embedding_batches(tokenizer, names, record, data)
    return _classifier_batches(src, tokenizer, names, data)


def _classifier_batches(src: Path, tokenizer, names: list[str], data: dict | None) -> list[dict]:
    """The task's training texts (saved with the model, or ``--task``/``--train-file``), as --quantize
    auto's static int8 reads them."""
    from alembert.config.schema import DataConfig
    from alembert.data.glue import MAX_LENGTH
    from alembert.data.load import resolve_task
    from alembert.export import auto
    from alembert.models.load import load_config
    from alembert.models.preprocessing import max_length_for

    given = {k: v for k, v in (data or {}).items() if v is not None and k != "text_column"}
    fields = {**auto.saved_data(src), **given}
    if given.get("train_file") and not given.get("task"):
        fields.pop("task", None)
    if not fields.get("task") and not fields.get("train_file"):
        raise AlembertError(
            f"--openvino --quantize int8 calibrates on training texts, and model {src} has no saved task: "
            "pass --task (and --data-dir) or --train-file"
        )
    fields.setdefault("max_length", max_length_for(src, None, MAX_LENGTH))
    cfg = DataConfig(**fields)
    task = resolve_task(cfg, load_config(src), f"model {src}")
    calibration = auto.training_calibration(cfg, task, tokenizer, names, CALIBRATION_TEXTS)
    if not calibration.batches:
        raise AlembertError(f"no training texts for {task.name} to calibrate int8 with; pass --train-file")
    return calibration.batches


def _embedding_batches(tokenizer, names: list[str], record: dict, data: dict | None) -> list[dict]:
    """``--train-file``'s texts, else STS-B's training sentences (real sentences of the kind the model embeds)."""
    from alembert.export.auto import embedding_calibration

    length = record.get("max_seq_length") or 128
    return embedding_calibration(tokenizer, names, length, data, CALIBRATION_TEXTS).batches


def _check(ir: Path, src: Path, record: dict, precision: str) -> dict:
    """The IR against the PyTorch source on the ONNX export's check sentences."""
    from alembert.runtimes.pytorch import PyTorchRuntime

    embedding = record.get("kind") == "embedding"
    if embedding:
        reference, tokenizer = PyTorchRuntime().load_embedding(src)
        read = lambda out: out.embeddings  # noqa: E731
    else:
        from alembert.models.load import load_tokenizer

        reference, tokenizer, read = PyTorchRuntime().load_classifier(src), load_tokenizer(src), lambda out: out.logits
    cases = reference_outputs(reference, tokenizer, record["inputs"], read)
    model = OvModel.from_ir(ir, precision=precision)
    return agreement([(model.run(model.prepare(feeds)), ref) for feeds, ref in cases], embedding)


def _write_card(folder: Path, info: dict) -> None:
    """README.md: what the IR is, how it computes, the check, and the CPU it was made on."""
    from alembert.files import write_text_atomic
    from alembert.machine import cpu_line

    embedding = info.get("kind") == "embedding"
    check = (
        f"max |diff| {info['max_abs_diff_vs_torch']:.2e}, min cosine {info['min_cosine_vs_torch']:.6f}"
        if embedding
        else f"max |logit diff| {info['max_abs_diff_vs_torch']:.2e}, argmax agreement {info['argmax_agreement']:.0%}"
    )
    lines = [
        "---",
        "library_name: openvino",
        f"pipeline_tag: {'sentence-similarity' if embedding else 'text-classification'}",
        "tags: [alembert, openvino" + (", int8" if info["quantization"] == "int8" else "") + "]",
        "---",
        f"# OpenVINO export of `{Path(info['source']).name}`",
        "",
        f"Exported by `alembert export --openvino` from `{info['source']}`: `{IR_FILE}` + `.bin` "
        f"({info['variant']}, computed in {info['precision']}); run it with `alembert evaluate`, `bench` or "
        "`predict` on this folder, or `openvino.Core().compile_model`.",
        "",
        f"- Graph: {info['int8'] or 'fp32 weights'}; last layer: {info.get('last_layer', 'all tokens')}.",
        f"- Check vs PyTorch on {info['check_sentences']} sentences: {check}.",
        "",
        f"Exported on: {cpu_line(info['machine'])}; openvino {info['versions']['openvino']}.",
        "",
    ]
    write_text_atomic(folder / "README.md", "\n".join(lines))
