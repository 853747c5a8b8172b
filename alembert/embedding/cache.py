"""Teacher sentence embeddings, computed once per text set and read back from a memory map.

An embedding teacher's whole output for a sentence is one vector (768 floats for MPNet), so
a corpus of 100k sentences costs 300 MB on disk and the teacher, the expensive side of every
step, runs once instead of once per epoch. The key covers the teacher's weights and its
embedding head (pooling, Dense, normalisation), its tokenizer, the max length, the texts and
the precision: any change computes a new cache. Layout: ``<cache>/embeddings/<key>/{emb.npy,
meta.json}``, written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from alembert.data.tokenize import clip, tokenizer_fingerprint
from alembert.distill.teacher_cache import weights_fingerprint
from alembert.distill.teacher_view import TeacherView
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
    """Memory-mapped teacher embeddings (N, dim), looked up by the batch's ``idx``."""

    def __init__(self, folder: Path):
        self.folder = folder
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
) -> EmbeddingCache:
    folder = embedding_cache_folder(teacher, tokenizer, texts, max_length, root, autocast)
    key = folder.name
    if (folder / "meta.json").is_file():
        return EmbeddingCache(folder)
    tmp = folder.with_name(f".tmp-{key}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        emb = encode(
            teacher, tokenizer, texts, max_length, batch_size, autocast, desc="teacher embeddings (cached once)"
        )
        np.save(tmp / "emb.npy", emb)
        (tmp / "meta.json").write_text(
            json.dumps({"texts": len(texts), "dim": int(emb.shape[1]), "max_length": max_length})
        )
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return EmbeddingCache(folder)
