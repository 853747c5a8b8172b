"""Build a sharded teacher-embedding cache from a test, in a process of its own.

usage: python shard_writer.py MODEL ROOT ROWS_PER_SHARD RECORD [PAUSE_AT]

The texts are ``text number i`` for i < 40. Every shard written appends ``rank shard`` to RECORD
(one file per rank: RECORD.RANK). With PAUSE_AT, the process prints ``PAUSED`` and sleeps while
encoding that shard (the 0-based count of its shards), so a test can SIGKILL it mid-shard. Under
``accelerate launch`` with several processes, each computes its share (accelerate's Accelerator).
"""

import sys
import time
from pathlib import Path

model_path, root, per, record = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pause_at = int(sys.argv[5]) if len(sys.argv) > 5 else None

from accelerate import Accelerator  # noqa: E402

import alembert.embedding.cache as cache  # noqa: E402
import alembert.embedding.shards as shards  # noqa: E402
from alembert.models.sentence import load_embedding_model  # noqa: E402

TEXTS = [f"text number {i} of the shard test" for i in range(40)]
accelerator = Accelerator(cpu=True)
rank = accelerator.process_index
original_encode, original_write = cache.encode, shards.write_shard
state = {"encoded": 0}


def encode(*args, **kwargs):
    if state["encoded"] == pause_at:
        print("PAUSED", flush=True)
        time.sleep(120)
    state["encoded"] += 1
    return original_encode(*args, **kwargs)


def write_shard(folder, i, array):
    path = original_write(folder, i, array)
    with open(f"{record}.{rank}", "a") as fh:
        fh.write(f"{rank} {i}\n")
    return path


cache.encode, shards.write_shard = encode, write_shard
model, tok = load_embedding_model(model_path)
built = cache.build_embedding_cache(model, tok, TEXTS, 32, root=root, accelerator=accelerator, rows_per_shard=per)
print("DONE", built.folder, flush=True)
