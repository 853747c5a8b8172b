#!/usr/bin/env python
"""The teacher-embedding cache built by one process and by several, side by side, on the same texts.

Each variant is the real command (``alembert distill-general --recipe embed-mse``, one training step)
under ``accelerate launch`` with an empty ``ALEMBERT_CACHE``, so its cache is built cold: one
process with ``--threads P`` against P processes with ``--threads 1`` each (every process computing
its share of the shards, alembert/embedding/cache.py). The figure is the run's ``teacher_cache``
wall time from ``metrics.json``; the caches are compared row by row, and the machine is recorded.

    python benchmarks/cache_processes.py --teacher mpnet-base --corpus squad --max-texts 8192 \
        --output runs/bench-cache-processes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def launch(processes: int, threads: int, args, cache: Path, out: Path) -> dict:
    env = {**os.environ, "ALEMBERT_CACHE": str(cache), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": str(threads)}
    env["TOKENIZERS_PARALLELISM"] = "false"
    if processes > 1:
        how = ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", "0"]
    else:
        how = ["--cpu", "--num_processes", "1"]
    how += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *how, "-m", "alembert.cli.main", "distill-general"]
    cmd += ["--recipe", "embed-mse", "--teacher", args.teacher, "--corpus", *args.corpus]
    cmd += ["--max-texts", str(args.max_texts), "--max-length", str(args.max_length), "--max-steps", "1"]
    cmd += ["--eval-tasks", "stsb-zeroshot", "--threads", str(threads), "--output", str(out), "--overwrite"]
    if args.mixed_precision:
        cmd += ["--mixed-precision", args.mixed_precision]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{processes} process(es) failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "processes": processes,
        "threads_each": threads,
        "cache_seconds": metrics["timings"]["teacher_cache"]["wall_s"],
        "command_seconds": round(wall, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="mpnet-base")
    p.add_argument("--corpus", nargs="+", default=["squad"])
    p.add_argument("--max-texts", type=int, default=8192)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--mixed-precision", default=None, help="bf16: the teacher under bf16 autocast")
    p.add_argument("--output", type=Path, default=Path("runs/bench-cache-processes"))
    args = p.parse_args()

    from alembert.embedding.cache import EmbeddingCache
    from alembert.machine import cpu_facts

    args.output.mkdir(parents=True, exist_ok=True)
    rows, arrays = [], []
    for n, threads in ((1, args.processes), (args.processes, 1)):
        cache = args.output / f"cache-{n}"
        shutil.rmtree(cache, ignore_errors=True)
        rows.append(launch(n, threads, args, cache, args.output / f"run-{n}"))
        (folder,) = (cache / "embeddings").glob("*")
        arrays.append(np.asarray(EmbeddingCache(folder).emb))
    one, many = rows
    result = {
        "machine": cpu_facts(),
        "texts": args.max_texts,
        "teacher": args.teacher,
        "runs": rows,
        "speedup": round(one["cache_seconds"] / many["cache_seconds"], 2),
        "max_abs_difference": float(np.abs(arrays[0] - arrays[1]).max()),
    }
    (args.output / "cache_processes.json").write_text(json.dumps(result, indent=2))
    facts = result["machine"]
    print(f"{facts['cpu_model']} ({'/'.join(facts['isa'])}), {os.cpu_count()} CPUs; {args.max_texts} texts")
    print("| processes x threads | cache build s | texts/s | command s |")
    print("|---|---:|---:|---:|")
    for r in rows:
        rate = args.max_texts / r["cache_seconds"]
        shape = f"{r['processes']} x {r['threads_each']}"
        print(f"| {shape} | {r['cache_seconds']:.1f} | {rate:.1f} | {r['command_seconds']} |")
    diff = result["max_abs_difference"]
    print(f"{args.processes} processes / 1: {result['speedup']}x; the caches differ by at most {diff:.2e}")


if __name__ == "__main__":
    main()
