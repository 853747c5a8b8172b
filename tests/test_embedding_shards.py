"""The teacher-embedding cache in shards (alembert/embedding/shards.py, cache.py).

Checked against the array computed whole: the memory-mapped reader returns exactly the rows asked
for, across shard borders; a build killed (SIGKILL) in the middle of a shard keeps the shards
finished before it and the next build computes only the missing ones, ending on the same array;
two processes under ``accelerate launch`` each write their own shards (one writer per shard) and
build the same cache as one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_embedding import st_folder

from alembert.embedding.cache import EmbeddingCache, build_embedding_cache, encode
from alembert.embedding.shards import ShardedArray, shard_count, shard_path, write_shard
from alembert.models.sentence import load_embedding_model

HELPER = Path(__file__).parent / "helpers" / "shard_writer.py"
REPO = Path(__file__).resolve().parents[1]
TEXTS = [f"text number {i} of the shard test" for i in range(40)]  # the helper's texts


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_bert):
    return st_folder(tmp_path_factory.mktemp("shard-teacher"), tiny_bert, "mean", True)


def whole(teacher) -> np.ndarray:
    model, tok = load_embedding_model(teacher)
    return encode(model, tok, TEXTS, 32)


def test_the_reader_returns_the_rows_asked_for_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    full = rng.normal(size=(23, 5)).astype(np.float32)
    for i in range(shard_count(23, 4)):
        write_shard(tmp_path, i, full[i * 4 : (i + 1) * 4])
    arr = ShardedArray(tmp_path, 23, 4)
    assert arr.shape == (23, 5) and len(arr) == 23 and shard_count(23, 4) == 6
    rows = rng.integers(0, 23, size=50)
    assert np.array_equal(arr[rows], full[rows])
    assert np.array_equal(arr[3:19:2], full[3:19:2]) and np.array_equal(arr[22], full[22])
    assert np.array_equal(arr[np.array([-1, 0])], full[[-1, 0]]) and np.array_equal(np.asarray(arr), full)
    with pytest.raises(IndexError):
        arr[np.array([23])]
    assert not list(tmp_path.glob(".tmp-*"))  # written under a temporary name, renamed when complete


def test_only_the_half_shards_of_writers_that_are_gone_are_cleared(tmp_path):
    """Two runs building the same cache at once: the second's start must not delete the first's shard in
    progress (it did: FileNotFoundError on the first's rename); a killed writer's half shard goes."""
    from alembert.embedding.shards import clear_temporary

    def running(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    gone = next(pid for pid in range(4_000_000, 1, -1) if not running(pid))
    dead = tmp_path / f".tmp-shard-00001-{gone}.npy"
    live = tmp_path / f".tmp-shard-00002-{os.getppid()}.npy"
    for f in (dead, live):
        f.write_bytes(b"half")
    clear_temporary(tmp_path)
    assert not dead.exists() and live.exists()


def test_a_built_cache_is_the_array_computed_whole_and_is_reused(teacher, tmp_path):
    model, tok = load_embedding_model(teacher)
    cache = build_embedding_cache(model, tok, TEXTS, 32, root=tmp_path, rows_per_shard=7)
    meta = json.loads((cache.folder / "meta.json").read_text())
    assert meta["shards"] == 6 and meta["shard_rows"] == 7 and meta["texts"] == 40
    assert isinstance(cache.emb, ShardedArray)
    np.testing.assert_allclose(np.asarray(cache.emb), whole(teacher), atol=1e-6)
    assert not list(cache.folder.parent.glob(".partial-*"))
    again = build_embedding_cache(model, tok, TEXTS, 32, root=tmp_path, rows_per_shard=7)
    assert again.folder == cache.folder


def test_a_cache_written_whole_before_shards_still_reads(tmp_path):
    full = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "emb.npy", full)
    (tmp_path / "meta.json").write_text(json.dumps({"texts": 4, "dim": 3, "max_length": 8}))
    assert np.array_equal(EmbeddingCache(tmp_path).emb[[2, 0]], full[[2, 0]])


@pytest.mark.cli
def test_a_build_killed_mid_shard_keeps_the_finished_shards_and_resumes(teacher, tmp_path):
    root, record = tmp_path / "cache", tmp_path / "written"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HELPER), str(teacher), str(root), "8", str(record), "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for line in proc.stdout:  # shards 0, 1, 2 written; the fourth is being computed
        if "PAUSED" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (partial,) = root.glob("embeddings/.partial-*")
    assert sorted(p.name for p in partial.glob("shard-*.npy")) == [shard_path(partial, i).name for i in range(3)]
    assert not list(root.glob("embeddings/*/meta.json"))  # no reader would take it for a cache

    model, tok = load_embedding_model(teacher)
    computed = []
    import alembert.embedding.cache as cache_module

    real = cache_module.encode

    def counting(model, tok, texts, *a, **k):
        computed.append(len(texts))
        return real(model, tok, texts, *a, **k)

    cache_module.encode = counting
    try:
        cache = build_embedding_cache(model, tok, TEXTS, 32, root=root, rows_per_shard=8)
    finally:
        cache_module.encode = real
    assert computed == [8, 8]  # shards 3 and 4 only: at most the shard in progress was lost
    np.testing.assert_allclose(np.asarray(cache.emb), whole(teacher), atol=1e-6)


@pytest.mark.cli
def test_two_processes_write_their_own_shards_of_the_same_cache(teacher, tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ACCELERATE_USE_CPU": "1",
        "PYTHONPATH": str(REPO),
    }
    record = tmp_path / "written"
    how = ["--multi_gpu", "--num_processes", "2", "--main_process_port", "0", "--num_machines", "1"]
    how += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *how, str(HELPER)]
    cmd += [str(teacher), str(tmp_path / "cache"), "6", str(record)]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = {r: Path(f"{record}.{r}").read_text().split("\n")[:-1] for r in (0, 1)}
    assert written[0] == ["0 0", "0 2", "0 4", "0 6"] and written[1] == ["1 1", "1 3", "1 5"]
    (folder,) = (tmp_path / "cache").glob("embeddings/*")
    np.testing.assert_allclose(np.asarray(EmbeddingCache(folder).emb), whole(teacher), atol=1e-5)
