"""Fair speed measurement of several models on identical inputs.

Each model gets a latency workload (batch 1) and a throughput workload (batch 32),
both at a fixed sequence length (classifiers, QA), or with dynamic padding over real
sentences (embedding models: :func:`sentence_workload`). After a warm-up of every model, repetitions are
interleaved round-robin (model A, B, C, then B, C, A, ...), so a burst of load on a
shared machine slows every model alike and the ratios stay fair. The caller fixes
the thread count for torch and onnxruntime alike. Denormals are flushed to zero for
every model: onnxruntime sessions set the flag on the calling thread anyway (see
:func:`alembert.runtimes.onnxruntime.make_session`), so torch models get it too rather than
depending on load order. A model is anything a runtime loaded (:mod:`alembert.runtimes`): its
inputs are made ready once by ``model.prepare`` (numpy feeds, tensors on the device) and the timed
call is ``model.run``, whatever library runs it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Workload:
    """One model's two timed calls: ``latency(i)`` runs the i-th single example, ``throughput()`` one batch."""

    latency: Callable[[int], object]
    throughput: Callable[[], object]
    batch_size: int
    sequences: int | None = None  # sequences per throughput() call, when it runs several batches (default: batch_size)
    latency_ms: list[float] = field(default_factory=list)
    batch_s: list[float] = field(default_factory=list)


def fixed_length_inputs(tokenizer, texts_a, texts_b, seq_len: int) -> dict[str, torch.Tensor]:
    """Real texts tokenised and padded/truncated to exactly ``seq_len`` tokens."""
    return dict(
        tokenizer(
            list(texts_a),
            list(texts_b) if texts_b is not None else None,
            padding="max_length",
            truncation=True,
            max_length=seq_len,
            return_tensors="pt",
        )
    )


def batch_workload(model, inputs: dict, batch_size: int) -> Workload:
    """Workload of a runtime model (:class:`~alembert.runtimes.RuntimeModel`) on ``inputs`` (at least
    ``batch_size`` rows): every single row and the first ``batch_size`` rows prepared once."""
    n = len(inputs["input_ids"])
    singles = [model.prepare({k: v[i : i + 1] for k, v in inputs.items()}) for i in range(n)]
    batch = model.prepare({k: v[:batch_size] for k, v in inputs.items()})
    return Workload(lambda i: model.run(singles[i % n]), lambda: model.run(batch), batch_size)


def sentence_workload(
    model,
    tokenizer,
    latency_texts: list[str],
    throughput_texts: list[str],
    batch_size: int,
    max_length: int,
) -> Workload:
    """Dynamic padding, as an embedding model serves text: ``latency(i)`` embeds the i-th of
    ``latency_texts`` alone (arrival order, no padding); ``throughput()`` embeds all of
    ``throughput_texts`` in length-sorted batches of ``batch_size``, each padded to its longest."""
    run = model.run

    def enc(texts):
        return model.prepare(
            dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
        )

    singles = [enc([t]) for t in latency_texts]
    ordered = sorted(
        throughput_texts, key=lambda t: len(tokenizer(t, truncation=True, max_length=max_length)["input_ids"])
    )
    batches = [enc(ordered[i : i + batch_size]) for i in range(0, len(ordered), batch_size)]

    def throughput():
        for b in batches:
            run(b)

    n = len(singles)
    return Workload(lambda i: run(singles[i % n]), throughput, batch_size, sequences=len(ordered))


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(
    workloads: dict[str, Workload], repeats: int = 5, warmup: int = 2, latency_iters: int = 10
) -> dict[str, dict]:
    """Per model: latency median / p90 (ms) over all batch-1 calls, throughput (sequences/s)
    from the median batch time."""
    torch.set_flush_denormal(True)  # the same thread state for torch and onnxruntime models
    for w in workloads.values():
        for i in range(warmup):
            w.latency(i)
            w.throughput()
    names = list(workloads)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            w = workloads[name]
            w.latency_ms += [1000 * _timed(w.latency, r * latency_iters + i) for i in range(latency_iters)]
            w.batch_s.append(_timed(w.throughput))
    return {
        name: {
            "latency_ms_median": statistics.median(w.latency_ms),
            "latency_ms_p90": float(np.percentile(w.latency_ms, 90)),
            "throughput_seq_s": (w.sequences or w.batch_size) / statistics.median(w.batch_s),
            "batch_s_samples": [round(t, 5) for t in w.batch_s],
        }
        for name, w in workloads.items()
    }
