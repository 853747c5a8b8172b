"""An ``(N, dim)`` float32 array on disk in shards of fixed row count, each written on its own.

Why shards: the teacher's embeddings of 182k texts took 1 h 33 min to compute as one array, and a
kill at minute 90 lost all of it. Written as shards of :data:`SHARD_ROWS` rows, a kill loses at
most the shard being written (each is saved under a temporary name and renamed when complete, so a
shard file that exists is whole), several processes can each write their share (one writer per
shard: process ``r`` of ``p`` writes shards ``r, r + p, ...``), and a reader maps every shard
into memory instead of loading the array (:class:`ShardedArray`).

Layout: ``<folder>/shard-00000.npy``, ``shard-00001.npy``, ...; what a complete array is (rows,
width, shard size) is for the caller's ``meta.json`` to say.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from alembert.progress import progress

#: rows per shard: 4,096 MPNet vectors are 12.6 MB, about 3 minutes of a 12-layer teacher on 2 cores
SHARD_ROWS = 4096


def shard_count(rows: int, shard_rows: int = SHARD_ROWS) -> int:
    return max(1, math.ceil(rows / shard_rows))


def shard_path(folder: Path, i: int) -> Path:
    return Path(folder) / f"shard-{i:05d}.npy"


def shard_rows(i: int, rows: int, shard_rows: int = SHARD_ROWS) -> range:
    """The rows of the whole array that shard ``i`` holds."""
    return range(i * shard_rows, min(rows, (i + 1) * shard_rows))


def write_shard(folder: Path, i: int, array: np.ndarray) -> Path:
    """Shard ``i``, saved under a temporary name (this process's) and renamed into place when complete."""
    final = shard_path(folder, i)
    tmp = final.with_name(f".tmp-{final.stem}-{os.getpid()}.npy")
    try:
        np.save(tmp, np.ascontiguousarray(array))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def is_complete(folder: Path, i: int, rows: int) -> bool:
    """Whether shard ``i`` is on disk with its ``rows`` rows (a header that does not read is not)."""
    try:
        return np.load(shard_path(folder, i), mmap_mode="r").shape[0] == rows
    except (OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def clear_temporary(folder: Path) -> None:
    """Remove the half-written shards of writers that are gone (a killed build). A live writer's is left
    alone: another run may be building the same cache at the same moment (its temporary names carry its pid)."""
    for tmp in Path(folder).glob(".tmp-shard-*.npy"):
        pid = tmp.stem.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)


def build(
    folder: Path,
    rows: int,
    compute,
    meta: dict,
    *,
    rows_per_shard: int = SHARD_ROWS,
    accelerator=None,
    desc: str | None = None,
) -> Path:
    """``folder`` complete: the shards of a ``rows``-row array, ``compute(range_of_rows)`` giving each one's
    rows, written where missing into ``.partial-<name>`` (each process of ``accelerator`` its share: shards
    ``rank, rank + processes, ...``), then ``meta`` (with ``rows``, ``shards``, ``shard_rows``) and the rename
    into place by the main process. A folder already complete is returned as it is."""
    folder = Path(folder)
    if (folder / "meta.json").is_file():
        return folder
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)

    def everyone():
        if accelerator is not None:
            accelerator.wait_for_everyone()

    partial = folder.with_name(f".partial-{folder.name}")
    if rank == 0:
        partial.mkdir(parents=True, exist_ok=True)
        clear_temporary(partial)  # a killed writer's half shard; no process of this run writes yet
    everyone()
    n = shard_count(rows, rows_per_shard)
    todo = [i for i in range(rank, n, world) if not is_complete(partial, i, len(shard_rows(i, rows, rows_per_shard)))]
    total = sum(len(shard_rows(i, rows, rows_per_shard)) for i in todo)
    with progress(total, desc or "shards", "row", disable=rank != 0 or desc is None) as bar:
        for i in todo:
            part = shard_rows(i, rows, rows_per_shard)
            write_shard(partial, i, compute(part))
            bar.update(len(part))
    everyone()
    if rank == 0 and not (folder / "meta.json").is_file():
        whole = {**meta, "rows": rows, "shards": n, "shard_rows": rows_per_shard}
        (partial / "meta.json").write_text(json.dumps(whole))
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    everyone()
    return folder


def read(folder: Path) -> ShardedArray:
    """The complete sharded array of ``folder`` (its ``meta.json`` says the rows and shard size)."""
    meta = json.loads((Path(folder) / "meta.json").read_text())
    return ShardedArray(folder, meta.get("rows", meta.get("texts")), meta["shard_rows"])


class ShardedArray:
    """The shards of ``folder`` read as one ``(rows, dim)`` array, memory-mapped: indexing with an
    array of row numbers (or a slice, or one row) reads only those rows; ``np.asarray`` loads all."""

    def __init__(self, folder: Path, rows: int, shard_rows: int = SHARD_ROWS):
        self.folder, self.rows, self.per = Path(folder), rows, shard_rows
        self.maps = [np.load(shard_path(folder, i), mmap_mode="r") for i in range(shard_count(rows, shard_rows))]
        self.shape = (rows, int(self.maps[0].shape[1]))
        self.dtype = self.maps[0].dtype

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            rows = np.arange(self.rows)[rows]
        one = np.ndim(rows) == 0
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if rows.size and (rows.min() < -self.rows or rows.max() >= self.rows):
            raise IndexError(f"row {int(rows.max())} of an array of {self.rows} rows")
        rows = rows % self.rows
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        which = rows // self.per
        for s in np.unique(which):
            at = which == s
            out[at] = self.maps[s][rows[at] - s * self.per]
        return out[0] if one else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = np.concatenate([np.asarray(m) for m in self.maps])
        return whole if dtype is None else whole.astype(dtype)
