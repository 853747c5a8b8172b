"""Teacher sentence embeddings, computed once per text set and read back memory-mapped.

An embedding teacher's whole output for a sentence is one vector (768 floats for MPNet), so
a corpus of 100k sentences costs 300 MB on disk and the teacher, the expensive side of every
step, runs once instead of once per epoch. The key covers the teacher's weights and its
embedding head (pooling, Dense, normalisation), its tokenizer, the max length, the texts and
the precision: any change computes a new cache.

Layout: ``<cache>/embeddings/<key>/{shard-00000.npy, ..., meta.json}`` (:mod:`.shards`). The
shards grow in ``.partial-<key>`` and the folder is renamed into place with ``meta.json`` once
every shard is there, so a reader never sees a partial cache, while a killed build keeps its
finished shards: the next run computes only the missing ones. Under ``accelerate launch`` every
process computes its share of the shards (one writer per shard) and the main process completes
the folder. Caches written whole before shards existed (``emb.npy``) are read as they are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from alembert.data.tokenize import clip, tokenizer_fingerprint
from alembert.distill.teacher_cache import weights_fingerprint
from alembert.distill.teacher_view import TeacherView
from alembert.embedding.shards import SHARD_ROWS, ShardedArray, build
from alembert.models.packaged import cache_dir
from alembert.progress import progress


def texts_fingerprint(texts: list[str]) -> str:
    return hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]


def embedding_cache_key(
    teacher, tokenizer, texts: list[str], max_length: int, autocast: torch.dtype | None = None
) -> str:
    head = f"{teacher.pooling}|{teacher.normalize}|{len(teacher.dense)}"
    parts = [
        weights_fingerprint(teacher),
        head,
        tokenizer_fingerprint(tokenizer),
        str(max_length),
        texts_fingerprint(texts),
        str(autocast),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


class EmbeddingCache:
    """Memory-mapped teacher embeddings ``emb`` (N, dim), looked up by the batch's ``idx``."""

    def __init__(self, folder: Path):
        self.folder = folder
        meta = json.loads((folder / "meta.json").read_text())
        if "shard_rows" in meta:
            self.emb = ShardedArray(folder, meta.get("rows", meta["texts"]), meta["shard_rows"])
        else:  # written whole, before shards
            self.emb = np.load(folder / "emb.npy", mmap_mode="r")

    def view(self, batch: dict) -> TeacherView:
        rows = batch["idx"].cpu().numpy()
        emb = torch.from_numpy(np.asarray(self.emb[rows])).to(batch["input_ids"].device)
        return TeacherView(logits=[], cls=None, embeddings=emb)


def model_device(model) -> torch.device:
    """Where ``model`` runs: its parameters' device, or its ``device`` (a runtime model that is not a torch
    module, e.g. an ONNX export: the CPU)."""
    return next(model.parameters()).device if hasattr(model, "parameters") else model.device


@torch.inference_mode()
def encode(
    model,
    tokenizer,
    texts: list[str],
    max_length: int,
    batch_size: int = 64,
    autocast: torch.dtype | None = None,
    desc: str | None = None,
) -> np.ndarray:
    """(N, dim) float32 embeddings of ``texts`` in their order, computed in length-sorted batches."""
    model.eval()
    device = model_device(model)
    lengths = [len(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    out = np.zeros((len(texts), model.dim), np.float32)
    with progress(len(texts), desc or "encoding", "text", disable=desc is None) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer(
                clip([texts[i] for i in idx], max_length),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                emb = model(
                    **{
                        k: v.to(device)
                        for k, v in batch.items()
                        if k in ("input_ids", "attention_mask", "token_type_ids")
                    }
                ).embeddings
            out[idx] = emb.float().cpu().numpy()
            bar.update(len(idx))
    return out


def embedding_cache_folder(
    teacher, tokenizer, texts: list[str], max_length: int, root: Path | None = None, autocast=None
) -> Path:
    """Where the teacher embeddings of ``texts`` are cached (``meta.json`` in it once complete)."""
    key = embedding_cache_key(teacher, tokenizer, texts, max_length, autocast)
    return Path(root or cache_dir()) / "embeddings" / key


def build_embedding_cache(
    teacher,
    tokenizer,
    texts: list[str],
    max_length: int,
    batch_size: int = 64,
    root: Path | None = None,
    autocast: torch.dtype | None = None,
    accelerator=None,
    rows_per_shard: int = SHARD_ROWS,
) -> EmbeddingCache:
    """The cache of ``texts`` (see the module docstring), computed where missing. With ``accelerator``
    (every process of the run calls this) each process computes shards ``rank, rank + processes, ...``."""
    folder = embedding_cache_folder(teacher, tokenizer, texts, max_length, root, autocast)

    def embed(rows: range) -> np.ndarray:
        emb = encode(teacher, tokenizer, [texts[r] for r in rows], max_length, batch_size, autocast)
        return emb.astype(np.float32)

    meta = {"texts": len(texts), "dim": int(teacher.dim), "max_length": max_length}
    build(
        folder,
        len(texts),
        embed,
        meta,
        rows_per_shard=rows_per_shard,
        accelerator=accelerator,
        desc="teacher embeddings (cached once)",
    )
    return EmbeddingCache(folder)
