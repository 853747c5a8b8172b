"""How fast a candidate will run on this CPU, before any training: its shape timed on random weights.

Speed depends on the shape (layers, widths, heads, a token table) and the machine, not on what the
weights learnt, so a random model of each candidate's shape, timed here at the bench's batch and
length, predicts the trained model's speed in seconds to minutes instead of hours. Every shape is
timed in one interleaved run (:func:`alembert.measure.speed.measure`), so a burst of load slows them
all alike and the ratios to the teacher hold.

The int8 variant is predicted by the runtime ``export --quantize auto`` picks most often on CPUs
like these (docs/results.md, issues 30 and 36): NNCF int8 compiled by OpenVINO, computing the rest in
bf16 where the CPU does so natively. Without OpenVINO it is PyTorch's dynamic int8, a floor (about half
OpenVINO's speed on an AVX-512 EPYC), which would drop candidates the real export could keep. Either
way the frontier's bench measures the real exports.

Example::

    speeds = predict(teacher_config, {"teacher": {}, "layers-6": {"num_hidden_layers": 6}}, seq_len=128)
    speeds["layers-6"]["fp32"]["throughput_seq_s"] / speeds["teacher"]["fp32"]["throughput_seq_s"]  # ~2
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch

from alembert.machine import torch_threads
from alembert.measure.speed import Workload, measure

BATCH = 32  # the bench's throughput batch
CALIBRATION = 8  # random batches of 4 an OpenVINO int8 prediction calibrates on (the speed does not depend on them)


def _inputs(config, seq_len: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, config.vocab_size, (BATCH, seq_len), generator=g)  # ordinary tokens, no specials
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _workload(run, prepare, batch: dict) -> Workload:
    """Batch 1 (the first row) and batch 32 of ``batch``, each made ready once by ``prepare``, timed by ``run``."""
    single, whole = prepare({k: v[:1] for k, v in batch.items()}), prepare(batch)
    return Workload(lambda i: run(single), lambda: run(whole), BATCH)


def torch_workload(model, batch: dict) -> Workload:
    def run(inputs):
        with torch.inference_mode():
            return model(**inputs)

    return _workload(run, lambda b: b, batch)


def torch_int8(model):
    """PyTorch's dynamic int8 of ``model``'s Linear layers."""
    with warnings.catch_warnings():  # torch's notice that its quantised tensors are deprecated
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class _LastHidden(torch.nn.Module):
    """The encoder's token states as one tensor: what OpenVINO's converter traces."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def openvino_int8_workload(model, batch: dict, threads: int) -> Workload | None:
    """``model`` converted by OpenVINO, quantised by NNCF to int8 (on random batches: the speed does not depend
    on the values) and compiled as ``--quantize auto``'s OpenVINO variants are (bf16 where the CPU has it);
    None where OpenVINO or NNCF is not installed."""
    try:
        import nncf  # noqa: F401  (nncf_int8's)
        import openvino as ov
    except ImportError:
        return None
    from alembert.export.openvino import nncf_int8
    from alembert.machine import cpu_facts, has_bf16
    from alembert.runtimes.openvino import compile_ir

    calibration = [{k: v[i : i + 4].numpy() for k, v in batch.items()} for i in range(0, 4 * CALIBRATION, 4)]
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")  # the tracer's notes on transformers' mask code
        graph = ov.convert_model(_LastHidden(model), example_input={k: v[:4] for k, v in batch.items()})
    graph = nncf_int8(graph, calibration)
    request = compile_ir(graph, threads, "bf16" if has_bf16(cpu_facts()) else "f32").create_infer_request()
    return _workload(request.infer, lambda b: {k: v.numpy() for k, v in b.items()}, batch)


def predict(
    config,
    shapes: dict[str, dict],
    seq_len: int,
    threads: int | None = None,
    repeats: int = 3,
    int8: set | None = None,
    runtime: str = "auto",
    builders: dict[str, str] | None = None,
) -> dict[str, dict]:
    """``{name: {"fp32": speed, "int8": speed, "parameters": n, "int8_by": runtime}}`` for each shape of
    ``shapes`` (name -> fields changed; ``{}`` is the teacher's own), a speed being
    :func:`~alembert.measure.speed.measure`'s (``throughput_seq_s`` at batch 32 x ``seq_len``,
    ``latency_ms_median`` at batch 1). ``int8``: the names that get an int8 prediction (default: every
    one); ``runtime``: who predicts it, as the export will run it: ``auto`` (OpenVINO's NNCF int8 where
    installed, else PyTorch's), ``pytorch`` (dynamic int8, as ONNX Runtime's dynamic int8 export computes
    it), ``none`` (no int8 variant); ``builders``: name -> the student builder that offered the shape and
    makes its random model (:meth:`~alembert.students.base.Builder.random_model`; default: the teacher's
    family with the shape's fields changed)."""
    from alembert.students import BUILDERS, Builder

    builders = builders or {}
    with torch_threads(threads) as threads:
        workloads, counts, by = {}, {}, {}
        for k, (name, shape) in enumerate(shapes.items()):
            model = BUILDERS.get(builders.get(name), Builder).random_model(config, shape)
            counts[name] = sum(p.numel() for p in model.parameters())
            batch = _inputs(config, seq_len, k)
            workloads[f"{name}/fp32"] = torch_workload(model, batch)
            if (int8 is None or name in int8) and runtime != "none":
                fast = openvino_int8_workload(model, batch, threads) if runtime == "auto" else None
                by[name] = "openvino" if fast is not None else "pytorch"
                workloads[f"{name}/int8"] = fast or torch_workload(torch_int8(model), batch)
        timed = measure(workloads, repeats=repeats, warmup=1, latency_iters=5)
    out = {}
    for name in shapes:
        out[name] = {"parameters": counts[name], **({"int8_by": by[name]} if name in by else {})}
        for variant in ("fp32", "int8"):
            t = timed.get(f"{name}/{variant}")
            if t is not None:
                out[name][variant] = {
                    "throughput_seq_s": round(t["throughput_seq_s"], 2),
                    "latency_ms_median": round(t["latency_ms_median"], 3),
                }
    return out
