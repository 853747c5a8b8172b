"""How fast a candidate will run on this CPU, before any training: its shape timed on random weights.

Speed depends on the shape (layers, widths, heads, a token table) and the machine, not on what the
weights learnt, so a random model of each candidate's shape, timed here at the bench's batch and
length, predicts the trained model's speed in seconds instead of hours. Every shape is timed in one
interleaved run (:func:`alembert.measure.speed.measure`), so a burst of load slows them all alike and
the ratios to the teacher hold. The int8 variant is predicted by PyTorch's dynamic int8 of the same
random model: a floor, not the export ``--quantize auto`` will pick (which is kept only when faster),
and the frontier's bench measures the real exports anyway.

Example::

    speeds = predict(teacher_config, {"teacher": {}, "layers-6": {"num_hidden_layers": 6}}, seq_len=128)
    speeds["layers-6"]["fp32"]["throughput_seq_s"] / speeds["teacher"]["fp32"]["throughput_seq_s"]  # ~2
"""

from __future__ import annotations

import copy
import warnings

import torch

from alembert.measure.speed import Workload, measure

BATCH = 32  # the bench's throughput batch
STATIC = "static_dim"  # a shape with no layers: a token table of this width


def random_model(config, shape: dict) -> torch.nn.Module:
    """A model of the teacher ``config``'s family with ``shape``'s fields changed, random weights, in eval mode
    (a token table of ``shape["static_dim"]`` for a static student)."""
    if STATIC in shape:
        from alembert.models.static import StaticEmbeddingModel

        return StaticEmbeddingModel(torch.randn(config.vocab_size, shape[STATIC])).eval()
    from transformers import AutoModel

    c = copy.deepcopy(config)
    for key, value in shape.items():
        setattr(c, key, value)
    return AutoModel.from_config(c).eval()


def _workload(model, config, seq_len: int, seed: int) -> Workload:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, config.vocab_size, (BATCH, seq_len), generator=g)  # ordinary tokens, no specials
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    single = {k: v[:1] for k, v in batch.items()}

    def call(inputs):
        with torch.inference_mode():
            return model(**inputs)

    return Workload(lambda i: call(single), lambda: call(batch), BATCH)


def predict(
    config, shapes: dict[str, dict], seq_len: int, threads: int | None = None, repeats: int = 3, int8: set | None = None
) -> dict[str, dict]:
    """``{name: {"fp32": speed, "int8": speed, "parameters": n}}`` for each shape of ``shapes`` (name -> fields
    changed; ``{}`` is the teacher's own), a speed being :func:`~alembert.measure.speed.measure`'s
    (``throughput_seq_s`` at batch 32 x ``seq_len``, ``latency_ms_median`` at batch 1). ``int8``: the names
    that get an int8 prediction (default: every shape with layers)."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        workloads, counts = {}, {}
        for k, (name, shape) in enumerate(shapes.items()):
            model = random_model(config, shape)
            counts[name] = sum(p.numel() for p in model.parameters())
            workloads[f"{name}/fp32"] = _workload(model, config, seq_len, k)
            if (int8 is None and STATIC not in shape) or (int8 is not None and name in int8):
                with warnings.catch_warnings():  # torch's notice that its quantised tensors are deprecated
                    warnings.simplefilter("ignore")
                    q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
                workloads[f"{name}/int8"] = _workload(q, config, seq_len, k)
        timed = measure(workloads, repeats=repeats, warmup=1, latency_iters=5)
    finally:
        torch.set_num_threads(old)
    out = {}
    for name in shapes:
        out[name] = {"parameters": counts[name]}
        for variant in ("fp32", "int8"):
            t = timed.get(f"{name}/{variant}")
            if t is not None:
                out[name][variant] = {
                    "throughput_seq_s": round(t["throughput_seq_s"], 2),
                    "latency_ms_median": round(t["latency_ms_median"], 3),
                }
    return out
