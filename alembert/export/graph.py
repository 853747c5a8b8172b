"""The ONNX graph toolkit every export shares: torch -> ONNX, onnxruntime's optimizer, int8.

Speed and accuracy choices, measured on the 3-layer SST-2 student (docs/results.md):
models with SDPA attention are exported at opset 23, where attention becomes one ONNX
``Attention`` node (MPNet has only eager attention and keeps the unfused graph);
onnxruntime's transformer optimizer then fuses bias+GELU and layer norms (BERT-family
graphs); int8 quantises the weight MatMuls (pooler and classifier included) per output
channel (per-tensor scales cost 1.7 points of SST-2 accuracy there, per-channel none) and
the embedding tables (0.6 point, and the file 3x smaller: 17.7 MB instead of 53.4 MB).
:func:`build_graph` chains them; :func:`graph_outputs` runs what was written (through the ONNX
runtime, :mod:`alembert.runtimes.onnxruntime`, as ``evaluate`` and ``bench`` will) beside PyTorch's outputs.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from alembert.errors import AlembertError

INT8_DYNAMIC = "dynamic; per-channel weight MatMuls, embedding tables"
FLOAT_CONTRIB_OPS = ("BiasGelu", "FastGelu", "Gelu", "QuickGelu", "SkipLayerNormalization", "BiasAdd")
DEFAULT_OPSET = 23  # the first opset with a fused Attention operator
ORT_MODEL_TYPES = {"bert": "bert", "roberta": "bert"}  # graphs onnxruntime's transformer optimizer knows
CHECK_SENTENCES = [
    "a gripping, beautifully acted film.",
    "It is hard to imagine a duller two hours in a cinema, and the ending makes it worse.",
    "ok",
    "The plot meanders , but the performances are strong enough to carry it to the end .",
]


def model_input_names(model, tokenizer) -> list[str]:
    """The tokenizer outputs that the model's forward accepts, in the tokenizer's order."""
    accepted = inspect.signature(model.forward).parameters
    return [n for n in tokenizer.model_input_names if n in accepted]


def export_graph(model, example: dict, path: Path, opset: int | None, output: str = "logits") -> None:
    """Dynamo export (the legacy exporter fails on BertModel) with dynamic batch/sequence."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (),
                kwargs=example,
                input_names=list(example),
                output_names=[output],
                dynamic_shapes={k: {0: batch, 1: seq} for k in example},
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
            program.save(path)
    except Exception as exc:  # the exporter's failures are long; keep the first line
        from alembert.files import is_disk_full

        if is_disk_full(exc):
            raise
        raise AlembertError(
            f"ONNX export failed ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}); try another --opset"
        ) from None
    finally:
        quiet.setLevel(level)


def optimize(path: Path, config) -> bool:
    """Fuse what onnxruntime's transformer optimizer recognises (bias+GELU, layer norms) in
    place; returns whether it ran. Graphs of other families are left as exported."""
    model_type = ORT_MODEL_TYPES.get(config.model_type)
    if model_type is None:
        return False
    from onnxruntime.transformers.optimizer import optimize_model

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the optimizer logs every pattern it tried
    try:  # it also prints "failed in shape inference" for the dynamo graph's ops: harmless, and hidden
        with contextlib.redirect_stdout(io.StringIO()):
            optimized = optimize_model(
                str(path),
                model_type=model_type,
                num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size,
                opt_level=1,
            )
        optimized.save_model_to_file(str(path))
    finally:
        root.setLevel(level)
    return True


def quantize_int8(src: Path, dst: Path, reduce_range: bool = False) -> None:
    """onnxruntime dynamic quantisation: int8 weight MatMuls (one scale per output channel)
    and int8 embedding tables (Gather). Not its default operator list: the quantiser
    mistakes ONNX's Attention for onnxruntime's own. Stale value_info from the exporter trips the
    quantiser's shape inference, so it is dropped first (it is only a hint). ``reduce_range``: 7-bit
    weights, [-63, 63]: onnxruntime's x86 AVX2 kernel without VNNI adds pairs of u8 x s8 products in
    int16 (VPMADDUBSW), which saturates with full-range weights (alembert/export/web.py)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quantiser_input(src, src.with_name("clean.onnx")) as clean:
        quantize_dynamic(
            clean,
            dst,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
            op_types_to_quantize=["MatMul", "Gather"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


@contextlib.contextmanager
def quantiser_input(src: Path, clean: Path, typed: bool = True):
    """``src`` without its value_info (the exporter's stale shape hints trip onnxruntime's quantisers'
    shape inference; they are only hints) but with a type for the outputs of onnxruntime's fused
    operators (a quantiser only quantises tensors of known type), saved as ``clean`` for the quantiser to
    read, with the root logger quiet meanwhile (the quantisers warn per tensor and suggest pre-processing,
    not needed here). ``clean`` is removed afterwards."""
    import onnx

    model = onnx.load(src)
    del model.graph.value_info[:]
    for node in model.graph.node if typed else ():  # ONNX shape inference stops at them: what follows stays untyped
        if node.domain == "com.microsoft" and node.op_type in FLOAT_CONTRIB_OPS:
            model.graph.value_info.append(
                onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)
            )
    onnx.save(model, clean)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield clean
    finally:
        root.setLevel(level)
        clean.unlink(missing_ok=True)


def reference_outputs(model, tokenizer, names: list[str], read=lambda out: out.logits) -> list[tuple[dict, np.ndarray]]:
    """PyTorch outputs (``read(out)``: the logits, or an embedding model's vectors) of the unmodified
    model on two shapes of real text (a padded batch of 4, a batch of 1): what the export check compares."""
    cases = []
    for texts in (CHECK_SENTENCES, CHECK_SENTENCES[:1]):
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            value = read(model(**{n: enc[n] for n in names})).numpy()
        cases.append(({n: enc[n].numpy().astype(np.int64) for n in names}, value))
    return cases


def build_graph(
    model, example: dict, tmp: Path, config, quantize: str | None, opset: int | None, output: str, choose=None
) -> dict:
    """Export ``model`` (its forward returns the ``output`` tensor) into ``tmp/model.onnx``:
    opset 23 attention for SDPA models, onnxruntime's transformer optimizer, then int8 when asked.
    ``quantize="auto"``: ``choose(fp32_graph, work_folder)`` returns (the chosen variant's folder, its
    record) (:func:`alembert.export.auto.choose`), whose files (``model.onnx``, or an OpenVINO IR)
    become the export's. Returns the export-info fields that describe the graph."""
    import onnx

    fp32 = tmp / "fp32" / "model.onnx"
    fp32.parent.mkdir()
    attention = config._attn_implementation
    export_graph(model, example, fp32, opset or (DEFAULT_OPSET if attention == "sdpa" else None), output)
    optimized = optimize(fp32, config)
    graph = onnx.load(fp32, load_external_data=False)
    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)
    auto = None
    if quantize == "auto":
        work = tmp / "variants"
        work.mkdir()
        chosen, auto = choose(fp32, work)  # a folder: model.onnx, or an OpenVINO IR of the same graph
        for f in chosen.iterdir():
            os.replace(f, tmp / f.name)
        shutil.rmtree(work)
    elif quantize == "int8":
        quantize_int8(fp32, tmp / "model.onnx")
    else:
        for f in fp32.parent.iterdir():  # model.onnx (+ model.onnx.data past 2 GB)
            os.replace(f, tmp / f.name)
    shutil.rmtree(tmp / "fp32")
    return {
        "format": auto["graph"]["format"] if auto else "onnx",
        "precision": auto["graph"].get("precision") if auto else None,
        "opset": opset,
        "attention": attention,
        "ort_optimized": optimized,
        "quantization": auto["graph"]["quantization"] if auto else quantize,
        "int8": auto["graph"]["int8"] if auto else INT8_DYNAMIC if quantize == "int8" else None,
        "versions": auto["graph"].get("versions", {}) if auto else {},  # libraries beyond torch/onnxruntime
        "auto": auto,
    }


def versions() -> dict:
    """The libraries an export was made and checked with (the export record)."""
    from alembert.runtimes.onnxruntime import OnnxRuntime
    from alembert.runtimes.pytorch import PyTorchRuntime

    return {r.library: r.version() for r in (PyTorchRuntime(), OnnxRuntime())}


def graph_outputs(
    onnx_path: Path, reference: list[tuple[dict, np.ndarray]], output: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(the graph's ``output``, PyTorch's) for each case of :func:`reference_outputs`: what an export's
    check compares, the graph run by the ONNX runtime as ``evaluate`` and ``bench`` will run it."""
    from alembert.runtimes.onnxruntime import graph_model

    model = graph_model(onnx_path, output, threads=torch.get_num_threads())
    return [(model.run(model.prepare(feeds)), ref) for feeds, ref in reference]


def agreement(pairs, embedding: bool) -> dict:
    """What an export's record says of its check, from (the export's output, PyTorch's) pairs of
    :func:`reference_outputs` cases: the largest |gap|, then argmax agreement (logits) or the lowest
    cosine (sentence embeddings), and how many sentences were compared."""
    gaps, agree, cosines, total = [], 0, [], 0
    for out, ref in pairs:
        gaps.append(float(np.abs(out - ref).max()))
        if embedding:
            norms = (np.linalg.norm(out, axis=-1) * np.linalg.norm(ref, axis=-1)).clip(1e-12)
            cosines.append(float(((out * ref).sum(-1) / norms).min()))
        else:
            agree += int((out.argmax(-1) == ref.argmax(-1)).sum())
        total += len(ref)
    check = {"max_abs_diff_vs_torch": max(gaps), "check_sentences": total}
    return {**check, "min_cosine_vs_torch": min(cosines)} if embedding else {**check, "argmax_agreement": agree / total}
