"""Export a sentence-embedding model (a sentence-transformers folder) to one ONNX graph.

The graph holds the whole computation: encoder, pooling (mean / max over the real tokens,
or the first token), the Dense layers and the L2 normalisation; inputs ``input_ids``,
``attention_mask`` (and ``token_type_ids`` when the encoder takes them), output
``sentence_embedding`` (batch, dim), batch and sequence axes dynamic. The graph goes
through the classifier export's steps (:func:`alembert.export.graph.build_graph`: opset 23
attention for SDPA models, onnxruntime's optimizer, per-channel int8). The folder keeps the
tokenizer, ``config.json`` and the sentence-transformers module files (``modules.json``,
``1_Pooling``, Dense configs, ...), so :func:`alembert.models.sentence.read_spec` still
reads it as an embedding model, and ``alembert evaluate --task stsb-zeroshot`` / ``bench``
run it through :class:`alembert.runtimes.onnxruntime.OnnxEmbedder`.

Only cls pooling reads a single position of the last layer, so only there is the last layer
computed for the first token alone (as for classifiers); mean and max pooling use every token.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from alembert.export.auto import chosen_outputs
from alembert.export.first_token import FAMILIES, FirstTokenLayer
from alembert.export.graph import agreement, build_graph, model_input_names, reference_outputs, versions
from alembert.export.staging import EXPORT_INFO, staged_folder
from alembert.files import write_json_atomic

OUTPUT = "sentence_embedding"
ST_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


def is_embedding_dir(path: str | Path) -> bool:
    """A sentence-transformers folder (``modules.json``) that is not a fine-tuned classifier."""
    from alembert.models.load import is_task_model, load_config

    path = Path(path)
    if not (path / "modules.json").is_file():
        return False
    return not ((path / "config.json").is_file() and is_task_model(load_config(path)))


class SentenceEmbedding(torch.nn.Module):
    """An :class:`~alembert.models.sentence.EmbeddingModel` whose forward returns the embeddings tensor alone."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).embeddings


def _first_token_last_layer(model) -> bool:
    """cls pooling of a BERT encoder: its last layer for the first token only (what the pooling reads)."""
    layers = getattr(getattr(model.encoder, "encoder", None), "layer", None)
    if model.pooling != "cls" or model.config.model_type not in FAMILIES or layers is None:
        return False
    if not isinstance(layers[-1], FirstTokenLayer):
        layers[-1] = FirstTokenLayer(layers[-1])
    return True


def _copy_module_files(src: Path, encoder_path: Path, tmp: Path) -> None:
    """modules.json (the Transformer now at the folder's root, where config and tokenizer go),
    the sentence-transformers configs and every module folder but the encoder's."""
    from alembert.models.sentence import inside

    modules = json.loads((src / "modules.json").read_text())
    for m in modules:
        kind, path = m["type"].rsplit(".", 1)[-1], m.get("path", "")
        if kind == "Transformer":
            m["path"] = ""
        elif path:
            where = f"model {src}: modules.json entry {m.get('idx')}"
            source, target = inside(src, path, where), inside(tmp, path, where)  # untrusted: never outside
            if source.is_dir():
                shutil.copytree(source, target)
            else:  # e.g. an empty Normalize folder that a package left out
                target.mkdir(parents=True)
    (tmp / "modules.json").write_text(json.dumps(modules, indent=2))
    for name in ST_FILES[1:]:
        for where in (encoder_path, src):
            if (where / name).is_file():
                shutil.copy(where / name, tmp / name)
                break


def export_embedding_onnx(
    src: Path,
    out_dir: Path,
    quantize: str | None = None,
    opset: int | None = None,
    first_token: bool = True,
    overwrite: bool = False,
    data: dict | None = None,
    candidates: list[str] | None = None,
    batch_invariant: bool = False,
) -> Path:
    """Export the sentence-transformers folder ``src`` to ``out_dir`` (fresh or overwritable:
    :func:`alembert.export.onnx.export_onnx` checked it); returns ``out_dir``. ``quantize="auto"``:
    every variant scored on STS-B dev (Spearman) and timed here (:mod:`alembert.export.auto`); ``data``
    (``data_dir``, ``train_file``, ``text_column``, ``max_eval_samples``), ``candidates`` and
    ``batch_invariant`` as for a classifier."""
    from alembert.models.sentence import load_embedding_model, read_spec

    spec = read_spec(src)
    model, tokenizer = load_embedding_model(src, attn="sdpa" if _sdpa(spec.encoder_path) else "eager")
    model.eval()
    names = model_input_names(model.encoder, tokenizer)
    reference = reference_outputs(
        model, tokenizer, names, read=lambda out: out.embeddings
    )  # before any rewrite: the check compares with the saved model
    pruned = first_token and _first_token_last_layer(model)
    example = {n: torch.from_numpy(v) for n, v in reference[0][0].items()}
    record = {
        "kind": "embedding",
        "pooling": model.pooling,
        "dense": [[d.in_features, d.out_features] for d in model.dense],
        "normalize": model.normalize,
        "dim": model.dim,
        "max_seq_length": model.max_seq_length,
    }
    choose = None
    if quantize == "auto":  # the dev set and calibration texts are read before any compute
        from alembert.export import auto

        eval_data = auto.embedding_eval_data(tokenizer, names, record, data)
        threads = torch.get_num_threads()

        def choose(fp32, work):
            return auto.choose(fp32, work, model, tokenizer, eval_data, threads, candidates, batch_invariant)[1:]

    with staged_folder(out_dir, overwrite, 3 * sum(p.numel() * p.element_size() for p in model.parameters())) as tmp:
        graph = build_graph(
            SentenceEmbedding(model).eval(), example, tmp, model.config, quantize, opset, OUTPUT, choose
        )
        tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        _copy_module_files(src, spec.encoder_path, tmp)
        write_json_atomic(
            tmp / EXPORT_INFO,
            {
                "format": graph["format"],
                **record,
                "source": str(src.resolve()),
                "quantization": graph["quantization"],
                "variant": graph["auto"]["variant"] if graph["auto"] else quantize or "fp32",
                **({"precision": graph["precision"]} if graph["precision"] else {}),
                "opset": graph["opset"],
                "inputs": names,
                "outputs": [OUTPUT],
                "dynamic_axes": {"batch": 0, "sequence": 1},
                "attention": graph["attention"],
                "ort_optimized": graph["ort_optimized"],
                "last_layer": "first token only" if pruned else "all tokens",
                "int8": graph["int8"],
                **agreement(chosen_outputs(tmp, graph, reference, OUTPUT, record), embedding=True),
                **({"auto": graph["auto"]} if graph["auto"] else {}),
                **versions(),
                **graph["versions"],
                "files": sorted({f.name for f in tmp.iterdir()} | {EXPORT_INFO}),
            },
        )
    return out_dir


def _sdpa(encoder_path: Path) -> bool:
    """Whether the encoder's architecture has SDPA attention (BERT), else eager (MPNet)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    from alembert.models.load import load_config

    config = load_config(encoder_path)
    return bool(getattr(MODEL_MAPPING.get(type(config), None), "_supports_sdpa", False))
