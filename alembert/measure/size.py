"""Model size: parameter counts (total, without embeddings) and weights on disk.

Parameters are counted on the architecture described by ``config.json`` (built on
the ``meta`` device, no memory), so a PyTorch folder and its ONNX / int8 exports
report the same counts; the size on disk is what differs. "Without embeddings"
leaves out every parameter under an ``embeddings`` module (word, position and
token-type tables and their LayerNorm), the count TinyBERT and DistilBERT quote.
A static model (a model2vec folder, or its ONNX export) has no architecture to build: it
is its token table, vocab x dim parameters, all of them embeddings (:func:`static_table`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from alembert.models.load import param_counts


def weight_files(folder: str | Path) -> list[Path]:
    """The files holding a model's weights (not its tokenizer or config), as the runtime that runs it names them."""
    from alembert.runtimes import runtime_for

    return runtime_for(folder).weight_files(Path(folder))


def disk_mb(folder: str | Path) -> float:
    """Size of the weight files in MB (10^6 bytes)."""
    return sum(f.stat().st_size for f in weight_files(folder)) / 1e6


def count_params(config) -> tuple[int, int]:
    """(total parameters, parameters outside the embeddings) of a classifier with ``config``."""
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    return param_counts(model)


def static_table(folder: str | Path):
    """The :class:`~alembert.models.static.StaticConfig` (vocabulary, width) of a static model's token table:
    a model2vec folder's (read from the safetensors header, no weights loaded) or what the ONNX export of one
    recorded; None for any other model (it has a transformers config)."""
    import json

    from alembert.models.resolve import resolve_model
    from alembert.models.static import StaticConfig, is_static_folder, static_config
    from alembert.runtimes.base import EXPORT_INFO

    folder = Path(resolve_model(folder))
    if is_static_folder(folder):
        return static_config(folder)
    info = folder / EXPORT_INFO
    record = json.loads(info.read_text()) if info.is_file() else {}
    return StaticConfig(int(record["dim"]), int(record["vocab_size"])) if record.get("static") else None


def count_embedding_params(folder: str | Path) -> tuple[int, int]:
    """The same counts for a sentence-embedding model (PyTorch folder or ONNX export): the encoder
    without its pooler (sentence embeddings never read it), plus the Dense layers; a static model's
    token table (its token weights are baked into it when saved), none of it outside the embeddings."""
    import json

    from transformers import AutoModel

    from alembert.models.load import load_config
    from alembert.models.sentence import read_spec

    table = static_table(folder)
    if table is not None:  # a table of token vectors: every parameter is an embedding
        return table.vocab_size * table.hidden_size, 0
    spec = read_spec(folder)
    with torch.device("meta"):
        model = AutoModel.from_config(load_config(spec.encoder_path))
    total, no_emb = param_counts(model, skip="pooler")
    for d in spec.dense:
        cfg = json.loads((d / "config.json").read_text())
        n = cfg["in_features"] * cfg["out_features"] + (cfg["out_features"] if cfg.get("bias", True) else 0)
        total, no_emb = total + n, no_emb + n
    return total, no_emb
