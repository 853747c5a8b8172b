"""The classifier export: a fine-tuned sequence classifier to one ONNX graph (optionally int8).

The exported folder holds ``model.onnx`` (dynamic batch and sequence axes; inputs
``input_ids``, ``attention_mask`` and ``token_type_ids`` when the model takes them;
output ``logits``), the tokenizer files, the model's ``config.json`` (so ``id2label``
travels), a README and ``alembert_export.json`` (format ``onnx``, source, quantisation, opset,
max |logit| gap vs PyTorch on a few sentences). With ``quantize="int8"`` the folder's
``model.onnx`` is the dynamically quantised graph (int8 weights, activations quantised at run
time); the fp32 graph is not kept there. ``quantize="auto"`` measures the variants on this
machine (:mod:`alembert.export.auto`). BERT classifiers compute their last layer for the [CLS]
token only (exact: the other positions' results are never read; 1.3x the int8 student's batch
throughput; :mod:`alembert.export.first_token`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from alembert.errors import AlembertError
from alembert.export.auto import chosen_outputs as auto_outputs
from alembert.export.card import write_export_card
from alembert.export.first_token import first_token_last_layer
from alembert.export.graph import agreement, build_graph, model_input_names, reference_outputs, versions
from alembert.export.staging import EXPORT_INFO, staged_folder
from alembert.files import write_json_atomic
from alembert.machine import cpu_facts
from alembert.models.load import load_tokenizer


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


def export_classifier_onnx(
    src: Path,
    out_dir: Path,
    quantize: str | None = None,
    opset: int | None = None,
    overwrite: bool = False,
    first_token: bool = True,
    data: dict | None = None,
    candidates: list[str] | None = None,
    batch_invariant: bool = False,
) -> Path:
    """Export the fine-tuned classifier ``src`` to ``out_dir`` (fresh or overwritable:
    :func:`alembert.export.onnx.export_onnx` checked it); returns ``out_dir``. ``data`` and
    ``candidates``: what ``quantize="auto"`` scores on and which variants it builds;
    ``batch_invariant``: only variants whose outputs do not depend on the batch."""
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

        def choose(fp32, work):
            return auto.choose(fp32, work, model, tokenizer, eval_data, threads, candidates, batch_invariant)[1:]

    pruned = first_token and first_token_last_layer(model)
    example = {n: torch.from_numpy(v) for n, v in reference[0][0].items()}  # the check's batch of 4

    with staged_folder(out_dir, overwrite, 8 * sum(p.numel() * p.element_size() for p in model.parameters())) as tmp:
        graph = build_graph(model, example, tmp, model.config, quantize, opset, "logits", choose)
        tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        info = {
            "format": graph["format"],
            "source": str(src.resolve()),
            "quantization": graph["quantization"],
            "variant": graph["auto"]["variant"]
            if graph["auto"]
            else ("int8-dynamic" if quantize == "int8" else "fp32"),
            "opset": graph["opset"],
            **({"precision": graph["precision"]} if graph["precision"] else {}),
            "inputs": names,
            "outputs": ["logits"],
            "dynamic_axes": {"batch": 0, "sequence": 1},
            "attention": graph["attention"],
            "ort_optimized": graph["ort_optimized"],
            "last_layer": "first token only" if pruned else "all tokens",
            "int8": graph["int8"],
            **agreement(auto_outputs(tmp, graph, reference, "logits"), embedding=False),
            **({"auto": graph["auto"]} if graph["auto"] else {}),
            "machine": cpu_facts(),
            **versions(),
            **graph["versions"],
            "files": sorted({f.name for f in tmp.iterdir()} | {EXPORT_INFO, "README.md"}),
        }
        write_export_card(tmp, info)  # the model card: variant, why, and the CPU it was measured on
        write_json_atomic(tmp / EXPORT_INFO, info)
    return out_dir
