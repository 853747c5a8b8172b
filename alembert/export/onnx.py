"""Export a fine-tuned sequence classifier to ONNX (optionally int8), ready for onnxruntime.

The exported folder holds ``model.onnx`` (dynamic batch and sequence axes; inputs
``input_ids``, ``attention_mask`` and ``token_type_ids`` when the model takes them;
output ``logits``), the tokenizer files, the model's ``config.json`` (so ``id2label``
travels) and ``alembert_export.json`` (source, quantisation, opset, max |logit| gap
vs PyTorch on a few sentences). With ``quantize="int8"`` the folder's ``model.onnx``
is the dynamically quantised graph (int8 weights, activations quantised at run
time); the fp32 graph is not kept there.

Speed and accuracy choices, measured on the 3-layer SST-2 student (docs/results.md):
models with SDPA attention are exported at opset 23, where attention becomes one ONNX
``Attention`` node (MPNet has only eager attention and keeps the unfused graph);
onnxruntime's transformer optimizer then fuses bias+GELU and layer norms (BERT-family
graphs); BERT classifiers compute their last layer for the [CLS] token only (exact: the
other positions' results are never read; 1.3x the int8 student's batch throughput); int8
quantises the weight MatMuls (pooler and classifier included) per output channel
(per-tensor scales cost 1.7 points of SST-2 accuracy there, per-channel none) and the
embedding tables (0.6 point, and the file 3x smaller: 17.7 MB instead of 53.4 MB).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from alembert.errors import AlembertError
from alembert.export.card import write_export_card
from alembert.export.first_token import first_token_last_layer
from alembert.files import usual_permissions, write_json_atomic
from alembert.machine import cpu_facts

QUANTIZATIONS = (None, "int8", "auto")  # auto: measured on this machine (alembert/export/auto.py)
INT8_DYNAMIC = "dynamic; per-channel weight MatMuls, embedding tables"
DEFAULT_OPSET = 23  # the first opset with a fused Attention operator
ORT_MODEL_TYPES = {"bert": "bert", "roberta": "bert"}  # graphs onnxruntime's transformer optimizer knows
EXPORT_INFO = "alembert_export.json"
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


def _load_task_model(path: Path):
    """The classifier with SDPA attention where its architecture has it (BERT), else eager (MPNet)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    from alembert.models.load import is_task_model, load_config, quiet_from_pretrained

    config = load_config(path)
    if not is_task_model(config):
        raise AlembertError(
            f"model {path} has no classification head; fine-tune it on a task first (alembert finetune), then export"
        )
    sdpa = getattr(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING.get(type(config), None), "_supports_sdpa", False)
    return quiet_from_pretrained(
        AutoModelForSequenceClassification, path, f"model {path}", attn_implementation="sdpa" if sdpa else "eager"
    ).eval()


def _export_graph(model, example: dict, path: Path, opset: int | None, output: str = "logits") -> None:
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


def _optimize(path: Path, config) -> bool:
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


def _quantize_int8(src: Path, dst: Path, reduce_range: bool = False) -> None:
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
def quantiser_input(src: Path, clean: Path):
    """``src`` without its value_info (the exporter's stale shape hints trip onnxruntime's quantisers'
    shape inference; they are only hints), saved as ``clean`` for the quantiser to read, with the root
    logger quiet meanwhile (the quantisers warn per tensor and suggest pre-processing, not needed here).
    ``clean`` is removed afterwards."""
    import onnx

    model = onnx.load(src)
    del model.graph.value_info[:]
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


def _check(onnx_path: Path, reference: list[tuple[dict, np.ndarray]]) -> dict:
    """Largest |logit| gap vs PyTorch, and argmax agreement."""
    from alembert.export.runtime import make_session

    session = make_session(onnx_path, threads=torch.get_num_threads())
    gaps, agree, total = [], 0, 0
    for feeds, ref in reference:
        out = session.run(["logits"], feeds)[0]
        gaps.append(float(np.abs(out - ref).max()))
        agree += int((out.argmax(-1) == ref.argmax(-1)).sum())
        total += len(ref)
    return {"max_abs_diff_vs_torch": max(gaps), "argmax_agreement": agree / total, "check_sentences": total}


# What an export writes, and so all that --overwrite may replace or remove in --output.
EXPORT_OWNED = {
    "model.onnx",
    "model.onnx.data",
    "config.json",
    EXPORT_INFO,
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    # sentence-embedding exports keep their sentence-transformers module description
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "README.md",
}
EXPORT_OWNED_DIRS = ("_Pooling", "_Dense", "_Normalize")  # N_Pooling/, N_Dense/, N_Normalize/
TORCH_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _check_output(out_dir: Path, src: Path | None, overwrite: bool) -> None:
    """Refuse, before any compute, an output that is a file, cannot be written, is in use, is
    not empty (without --overwrite), or holds a PyTorch model (never replaced by an export)."""
    from alembert.files import check_writable, lock_output

    if out_dir.exists() and not out_dir.is_dir():
        raise AlembertError(f"output {out_dir} is a file; pass a folder to --output")
    check_writable(out_dir)
    if not out_dir.is_dir():
        return
    lock_output(out_dir)
    if any(out_dir.iterdir()) and not overwrite:
        raise AlembertError(
            f"output {out_dir} exists and is not empty; pass --overwrite to replace it or choose another --output"
        )
    torch_files = [f for f in TORCH_WEIGHTS if (out_dir / f).exists()]
    if torch_files or (src is not None and src.resolve() == out_dir.resolve()):
        raise AlembertError(
            f"output {out_dir} holds a PyTorch model ({', '.join(torch_files) or 'the source'}); an export never "
            "replaces one: choose another --output"
        )


def _move_into_place(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    """A new ``out_dir``: rename ``tmp`` to it (the folder appears complete at once). An existing
    one: move the export's files in one by one (model.onnx and the export record last), then
    remove the previous export's files that this one did not write. Nothing else is touched."""
    if not out_dir.exists():
        try:
            os.rename(tmp, out_dir)
            return
        except OSError:  # created meanwhile (another export): treat it as existing
            _check_output(out_dir, None, overwrite)
    info = out_dir / EXPORT_INFO
    try:
        previous = set(json.loads(info.read_text()).get("files", [])) if info.is_file() else set()
    except (OSError, ValueError):
        previous = set()
    new = {f.name for f in tmp.iterdir()}
    for f in sorted(tmp.iterdir(), key=lambda p: (p.name == EXPORT_INFO, p.name == "model.onnx")):
        if f.is_dir() and f.name.endswith(EXPORT_OWNED_DIRS):  # a module folder replaces its old copy whole
            shutil.rmtree(out_dir / f.name, ignore_errors=True)
        os.replace(f, out_dir / f.name)
    for name in (previous & EXPORT_OWNED) - new:
        (out_dir / name).unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(out_dir: Path, overwrite: bool, nbytes: int = 0):
    """A temporary folder to write an export into (a hidden sibling of a new ``out_dir``, or inside
    an existing one: same file system, so moves are renames), moved into place by
    :func:`_move_into_place` when the block ends without an error and deleted otherwise: ``out_dir``
    is either complete or as it was. Folders of killed exports are swept first; a full disk is one line."""
    from alembert.files import disk_guard, make_temp_dir, sweep_stale_temps

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    home = out_dir if out_dir.is_dir() else out_dir.parent
    sweep_stale_temps(home)
    tmp = make_temp_dir(home)
    try:
        with disk_guard(out_dir, nbytes, cleanup=[tmp], kept=f"{out_dir} is as it was"):
            yield tmp
            usual_permissions(tmp)
            _move_into_place(tmp, out_dir, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_graph(
    model, example: dict, tmp: Path, config, quantize: str | None, opset: int | None, output: str, choose=None
) -> dict:
    """Export ``model`` (its forward returns the ``output`` tensor) into ``tmp/model.onnx``:
    opset 23 attention for SDPA models, onnxruntime's transformer optimizer, then int8 when asked.
    ``quantize="auto"``: ``choose(fp32_graph, work_folder)`` returns (chosen graph, its record)
    (:func:`alembert.export.auto.choose`). Returns the export-info fields that describe the graph."""
    import onnx

    fp32 = tmp / "fp32" / "model.onnx"
    fp32.parent.mkdir()
    attention = config._attn_implementation
    _export_graph(model, example, fp32, opset or (DEFAULT_OPSET if attention == "sdpa" else None), output)
    optimized = _optimize(fp32, config)
    final = tmp / "model.onnx"
    auto = None
    if quantize == "auto":
        work = tmp / "variants"
        work.mkdir()
        chosen, auto = choose(fp32, work)
        os.replace(chosen, final)
        shutil.rmtree(work)
    elif quantize == "int8":
        _quantize_int8(fp32, final)
    else:
        for f in fp32.parent.iterdir():  # model.onnx (+ model.onnx.data past 2 GB)
            os.replace(f, tmp / f.name)
    shutil.rmtree(tmp / "fp32")
    graph = onnx.load(final, load_external_data=False)
    return {
        "opset": next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None),
        "attention": attention,
        "ort_optimized": optimized,
        "quantization": auto["graph"]["quantization"] if auto else quantize,
        "int8": auto["graph"]["int8"] if auto else INT8_DYNAMIC if quantize == "int8" else None,
        "auto": auto,
    }


def versions() -> dict:
    import onnxruntime

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    quantize: str | None = None,
    opset: int | None = None,
    overwrite: bool = False,
    first_token: bool = True,
    data: dict | None = None,
    candidates: list[str] | None = None,
) -> Path:
    """Export ``model_dir`` (a fine-tuned classifier) to ``out_dir``; returns ``out_dir``.

    ``quantize``: None (fp32), ``"int8"`` (dynamic) or ``"auto"``: each variant of
    :data:`alembert.export.auto.VARIANTS` (or ``candidates``) is built, timed on this machine and
    scored on the dev set of ``data`` (DataConfig fields; default: the task saved with the model),
    and the fastest that keeps the dev metric within 0.01 of the PyTorch model's is kept.

    ``first_token``: BERT classifiers compute their last layer for the [CLS] token only
    (what the pooler reads; :mod:`alembert.export.first_token`); the logits are unchanged.
    A sentence-transformers folder (``modules.json``, no classification head) is exported as
    one sentence-embedding graph instead (:mod:`alembert.export.embedding`).

    Built in a temporary folder (a hidden sibling of a new ``out_dir``, or inside an existing
    one) and moved into place; a new ``out_dir`` appears complete at once. A non-empty ``out_dir``
    needs ``overwrite=True``, and then only the export's own files (``EXPORT_OWNED``) are
    replaced: the rest of the folder, a source model inside it included, is never touched.
    """
    from alembert.export.embedding import export_embedding_onnx, is_embedding_dir
    from alembert.export.runtime import is_onnx_dir
    from alembert.models.load import load_tokenizer
    from alembert.models.resolve import resolve_model

    if quantize not in QUANTIZATIONS:
        raise AlembertError(f"unknown quantisation {quantize!r}; use auto, int8 or none")
    out_dir = Path(out_dir).absolute()  # "." has a parent and a name
    _check_output(out_dir, None, overwrite)
    src = resolve_model(model_dir)
    _check_output(out_dir, src, overwrite)
    if is_onnx_dir(src):
        raise AlembertError(f"model {model_dir} is already an ONNX export; pass the PyTorch folder it came from")
    if is_embedding_dir(src):
        if quantize == "auto":
            raise AlembertError(
                f"model {model_dir} is a sentence-embedding model: --quantize auto scores classifiers on a dev set; "
                "pass --quantize int8"
            )
        return export_embedding_onnx(src, out_dir, quantize, opset, first_token, overwrite)
    model = _load_task_model(src)
    tokenizer = load_tokenizer(src)
    names = model_input_names(model, tokenizer)
    reference = reference_outputs(
        model, tokenizer, names
    )  # before any rewrite: the check compares with the saved model
    choose = None
    if quantize == "auto":  # the dev set and calibration texts are read before any compute: bad data fails fast
        from alembert.export import auto

        eval_data = auto.eval_data(src, model.config, tokenizer, names, data)
        threads = torch.get_num_threads()
        choose = lambda fp32, work: auto.choose(fp32, work, model, tokenizer, eval_data, threads, candidates)[1:]  # noqa: E731
    pruned = first_token and first_token_last_layer(model)
    example = {n: torch.from_numpy(v) for n, v in reference[0][0].items()}  # the check's batch of 4

    with staged_folder(out_dir, overwrite, 8 * sum(p.numel() * p.element_size() for p in model.parameters())) as tmp:
        graph = build_graph(model, example, tmp, model.config, quantize, opset, "logits", choose)
        tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        info = {
            "format": "onnx",
            "source": str(src.resolve()),
            "quantization": graph["quantization"],
            "variant": graph["auto"]["variant"]
            if graph["auto"]
            else ("int8-dynamic" if quantize == "int8" else "fp32"),
            "opset": graph["opset"],
            "inputs": names,
            "outputs": ["logits"],
            "dynamic_axes": {"batch": 0, "sequence": 1},
            "attention": graph["attention"],
            "ort_optimized": graph["ort_optimized"],
            "last_layer": "first token only" if pruned else "all tokens",
            "int8": graph["int8"],
            **_check(tmp / "model.onnx", reference),
            **({"auto": graph["auto"]} if graph["auto"] else {}),
            "machine": cpu_facts(),
            **versions(),
            "files": sorted({f.name for f in tmp.iterdir()} | {EXPORT_INFO, "README.md"}),
        }
        write_export_card(tmp, info)  # the model card: variant, why, and the CPU it was measured on
        write_json_atomic(tmp / EXPORT_INFO, info)
    return out_dir
