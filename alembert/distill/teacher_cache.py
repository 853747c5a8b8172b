"""Teacher outputs computed once per training set and read back from memory-mapped files.

Logit losses and Patient KD need only the teacher's logits and the [CLS] state of a
few layers: that fits on disk, so the teacher runs once (inference mode, length-sorted
batches, its fastest attention kernel) instead of once per step. The cache key covers
the teacher's weights, the tokenised data (token ids and labels), the tokenizer and the
max length, and which layers are kept: any change computes a new cache.

Layout: ``<cache>/teacher/<key>/{logits.npy, cls.npy, meta.json}``, written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from alembert.data.batching import eval_batches
from alembert.data.tokenize import data_fingerprint, tokenizer_fingerprint
from alembert.errors import AlembertError
from alembert.models.packaged import cache_dir
from alembert.progress import progress

OUTPUT_KEYS = ("logits", "start_logits", "end_logits")


def weights_fingerprint(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def cache_key(
    teacher,
    ds,
    tokenizer,
    max_length: int,
    layers: list[int],
    autocast: torch.dtype | None = None,
    source: str | None = None,
) -> str:
    parts = [
        weights_fingerprint(teacher),
        data_fingerprint(ds, ("input_ids", "token_type_ids", "labels")),
        tokenizer_fingerprint(tokenizer),
        str(max_length),
        ",".join(map(str, layers)),
    ]
    if source is not None:  # computed by an export of the teacher (export/teacher_labels.py): no autocast there
        parts.append(source)
    elif autocast is not None:  # full-precision keys stay as they were
        parts.append(str(autocast))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


class TeacherCache:
    """Memory-mapped teacher logits (N, C) and [CLS] states (N, n_layers, H)."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "meta.json").read_text())
        self.folder, self.layers = folder, meta["layers"]
        self.logits = np.load(folder / "logits.npy", mmap_mode="r")
        self.cls = np.load(folder / "cls.npy", mmap_mode="r") if self.layers else None

    @classmethod
    def zeros(cls, examples: int, classes: int, layers: list[int], hidden: int) -> TeacherCache:
        """A cache of zeros with the real one's shapes and lookup cost, in memory: a dry run times a
        cached stage with it without computing the teacher's outputs."""
        cache = cls.__new__(cls)
        cache.folder, cache.layers = None, list(layers)
        cache.logits = np.zeros((examples, classes), np.float32)
        cache.cls = np.zeros((examples, len(layers), hidden), np.float32) if layers else None
        return cache

    @staticmethod
    def nbytes(examples: int, classes: int, layers: list[int], hidden: int) -> int:
        """Bytes the cache takes on disk: float32 logits (N, C) and [CLS] states (N, layers, H)."""
        return 4 * examples * (classes + len(layers) * hidden)

    def lookup(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        rows = idx.cpu().numpy()
        logits = torch.from_numpy(np.asarray(self.logits[rows]))
        cls = (
            {layer: torch.from_numpy(np.asarray(self.cls[rows, j])) for j, layer in enumerate(self.layers)}
            if self.layers
            else {}
        )
        return logits, cls

    def view(self, batch: dict):
        from alembert.distill.teacher_view import cached_view

        return cached_view(self, batch)


@torch.inference_mode()
def build_cache(
    teacher,
    ds,
    tokenizer,
    max_length: int,
    layers: list[int],
    batch_size: int = 128,
    root: Path | None = None,
    autocast: torch.dtype | None = None,
    labeller=None,
) -> TeacherCache:
    """The cache for this teacher and training set, computed now unless it already exists.
    ``autocast``: the dtype of the run's mixed precision (None: full precision); stored as float32.
    ``labeller``: an :class:`alembert.export.teacher_labels.Labeller` whose runtime model computes
    the logits instead of the PyTorch teacher (logits only: ``layers`` must be empty)."""
    runner = getattr(labeller, "model", None)
    if runner is not None and layers:
        raise AlembertError("an exported teacher gives logits only; a stage caching [CLS] states runs it in PyTorch")
    source = labeller.source if runner is not None else None
    key = cache_key(teacher, ds, tokenizer, max_length, layers, autocast, source)
    folder = Path(root or cache_dir()) / "teacher" / key
    if (folder / "meta.json").is_file():
        return TeacherCache(folder)
    tmp = folder.with_name(f".tmp-{key}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    teacher.eval()
    device = next(teacher.parameters()).device
    logits = cls = None
    with progress(len(ds), "teacher outputs (cached once)", "ex") as bar:  # closed on errors too
        for idx, batch in eval_batches(ds, tokenizer, batch_size):
            batch.pop("labels", None)
            if runner is not None:
                out = runner(**batch)
            else:
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    out = teacher(**{k: v.to(device) for k, v in batch.items()}, output_hidden_states=bool(layers))
            value = out.logits.float().cpu().numpy()
            if logits is None:
                logits = np.lib.format.open_memmap(tmp / "logits.npy", "w+", np.float32, (len(ds), value.shape[-1]))
                if layers:
                    cls = np.lib.format.open_memmap(
                        tmp / "cls.npy", "w+", np.float32, (len(ds), len(layers), teacher.config.hidden_size)
                    )
            logits[idx] = value
            for j, layer in enumerate(layers):
                cls[idx, j] = out.hidden_states[layer][:, 0].float().cpu().numpy()
            bar.update(len(idx))
    for array in (logits, cls):
        if array is not None:
            array.flush()
    meta = {"layers": layers, "examples": len(ds), "max_length": max_length, "computed_by": source or "pytorch"}
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return TeacherCache(folder)
