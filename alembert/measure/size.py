"""Model size: parameter counts (total, without embeddings) and weights on disk.

Parameters are counted on the architecture described by ``config.json`` (built on
the ``meta`` device, no memory), so a PyTorch folder and its ONNX / int8 exports
report the same counts; the size on disk is what differs. "Without embeddings"
leaves out every parameter under an ``embeddings`` module (word, position and
token-type tables and their LayerNorm), the count TinyBERT and DistilBERT quote.
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


def count_embedding_params(folder: str | Path) -> tuple[int, int]:
    """The same counts for a sentence-embedding model (PyTorch folder or ONNX export): the encoder
    without its pooler (sentence embeddings never read it), plus the Dense layers."""
    import json

    from transformers import AutoModel

    from alembert.models.load import load_config
    from alembert.models.sentence import read_spec

    spec = read_spec(folder)
    with torch.device("meta"):
        model = AutoModel.from_config(load_config(spec.encoder_path))
    total, no_emb = param_counts(model, skip="pooler")
    for d in spec.dense:
        cfg = json.loads((d / "config.json").read_text())
        n = cfg["in_features"] * cfg["out_features"] + (cfg["out_features"] if cfg.get("bias", True) else 0)
        total, no_emb = total + n, no_emb + n
    return total, no_emb
