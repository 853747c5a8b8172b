"""The serving bench: real dev texts at their own lengths, as a deployed classifier sees them.

The fixed-length bench pads every input to 128 tokens; SST-2 sentences average 13, so it
times a workload nobody runs (and hides what removing padding work buys). Here, on the same
dev texts for every model, each with its own tokenizer:

- **arrival, batch 1**: one text per call in dev-file order, no padding: per-call latency
  p50/p90/p99 and sentences/s (an online endpoint without batching);
- **arrival, batch 32**: consecutive groups of 32 in file order, each padded to its longest
  (dynamic padding, what a micro-batching server sends): sentences/s and per-batch latency;
- **sorted, batch 32**: all texts sorted by length, batches of 32 (offline scoring): sentences/s.

Repeats are interleaved round-robin across models, as in :mod:`alembert.measure.speed`,
so load from other work slows every model alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

MODES = ("arrival_b1", "arrival_b32", "sorted_b32")
LABELS = {
    "arrival_b1": "real sentences, arrival order, batch 1",
    "arrival_b32": "real sentences, arrival order, batch 32, dynamic padding",
    "sorted_b32": "real sentences sorted by length, batch 32, dynamic padding",
}


@dataclass
class ServingWorkload:
    """Prepared inputs of one model: ``singles`` (batch 1), ``arrival`` and ``ordered`` batches of 32."""

    run: object
    singles: list
    arrival: list
    ordered: list
    sentences: int
    times: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})  # per call, seconds
    passes: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})  # per pass, seconds


def serving_workload(
    model,
    tokenizer,
    texts_a: list[str],
    texts_b: list[str] | None,
    max_length: int,
    batch_size: int = 32,
    singles: int = 128,
) -> ServingWorkload:
    """Tokenise once (not timed): the first ``singles`` texts alone, all texts in arrival-order
    batches and in length-sorted batches of ``batch_size``, each batch padded to its longest.
    ``model``: a runtime model (:mod:`alembert.runtimes`); its ``prepare`` readies each batch once
    and its ``run`` is the timed call."""
    prepare, run = model.prepare, model.run

    def enc(rows):
        a = [texts_a[i] for i in rows]
        b = [texts_b[i] for i in rows] if texts_b is not None else None
        return prepare(dict(tokenizer(a, b, padding=True, truncation=True, max_length=max_length, return_tensors="pt")))

    n = len(texts_a)
    lengths = [len(ids) for ids in tokenizer(texts_a, texts_b, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(n), key=lambda i: lengths[i])
    return ServingWorkload(
        run=run,
        singles=[enc([i]) for i in range(min(singles, n))],
        arrival=[enc(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)],
        ordered=[enc(order[i : i + batch_size]) for i in range(0, n, batch_size)],
        sentences=n,
    )


def _pass(w: ServingWorkload, mode: str) -> None:
    calls = {"arrival_b1": w.singles, "arrival_b32": w.arrival, "sorted_b32": w.ordered}[mode]
    start = time.perf_counter()
    for batch in calls:
        t = time.perf_counter()
        w.run(batch)
        w.times[mode].append(time.perf_counter() - t)
    w.passes[mode].append(time.perf_counter() - start)


def measure_serving(workloads: dict[str, ServingWorkload], repeats: int = 3, warmup: int = 1) -> dict[str, dict]:
    """Per model and mode: sentences/s (median pass) and per-call latency p50/p90/p99 (ms)."""
    torch.set_flush_denormal(True)
    for w in workloads.values():
        for _ in range(warmup):
            w.run(w.singles[0])
            w.run(w.arrival[0])
            w.run(w.ordered[-1])
    names = list(workloads)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for mode in MODES:
                _pass(workloads[name], mode)
    out = {}
    for name, w in workloads.items():
        row = {}
        for mode in MODES:
            calls = np.array(w.times[mode]) * 1000
            per_pass = {"arrival_b1": len(w.singles)}.get(mode, w.sentences)
            row[mode] = {
                "sentences_s": per_pass / float(np.median(w.passes[mode])),
                "ms_p50": float(np.percentile(calls, 50)),
                "ms_p90": float(np.percentile(calls, 90)),
                "ms_p99": float(np.percentile(calls, 99)),
                "calls": len(calls),
            }
        out[name] = row
    return out
