#!/usr/bin/env python
"""The GEMM ceiling: how fast each runtime multiplies the student's matrices on this CPU, and what
fraction of that an exported student reaches.

A BERT layer's cost is its weight GEMMs (Q, K, V, output, two FFN: tokens x hidden x 4 hidden + 2
tokens x hidden x ffn multiply-adds) plus attention, GELU and norms. This script times the weight
GEMMs alone, at the student's shapes (``--tokens`` rows: batch 32 x 128 by default; hidden and FFN
width from the model's config), one thread, in every precision each runtime offers here:

- ONNX Runtime: fp32 ``MatMul``; int8 ``DynamicQuantizeMatMul`` (what dynamic int8 runs) and
  ``MatMulIntegerToFloat`` at a fixed scale (what alembert's static int8 runs);
- OpenVINO: the same MatMul graph compiled in f32 and bf16, and NNCF's int8 of it;
- PyTorch: ``torch.mm`` fp32 and bf16.

Then, with ``--export DIR`` (any alembert export folder, one per flag), the export's weight-GEMM
work per sequence (counted from its config and ``last_layer``: a [CLS]-only last layer does that
layer's output and FFN GEMMs for one token) times its measured batch-32 throughput, as a fraction
of the best ceiling of its own precision. Everything is measured in this one process, interleaved.

    python benchmarks/gemm_ceiling.py --model runs/demo/student --export runs/demo/student-int8 [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the student (its config gives hidden and FFN width)")
    p.add_argument("--export", action="append", default=[], help="an export folder to place against the ceiling")
    p.add_argument("--tokens", type=int, default=32 * 128, help="GEMM rows: batch x sequence (default 32 x 128)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.0, help="timing window per GEMM and repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", default=None, help="write the figures as JSON here")
    return p.parse_args(argv)


def matmul_graph(k: int, n: int, weight: np.ndarray, kind: str):
    """An ONNX graph of one GEMM: x [M, k] times a constant [k, n]; ``kind``: fp32, dynamic or static int8."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])
    scale = np.abs(weight).max(0) / 127.0
    w8 = np.round(weight / scale).astype(np.int8)
    inits = {
        "w": numpy_helper.from_array(weight, "w"),
        "w8": numpy_helper.from_array(w8, "w8"),
        "ws": numpy_helper.from_array(scale.astype(np.float32), "ws"),
        "wz": numpy_helper.from_array(np.zeros(n, np.int8), "wz"),
        "xs": numpy_helper.from_array(np.array(4.0 / 255, np.float32), "xs"),
        "xz": numpy_helper.from_array(np.array(128, np.uint8), "xz"),
    }
    if kind == "fp32":
        nodes, used = [helper.make_node("MatMul", ["x", "w"], ["y"])], ["w"]
    elif kind == "dynamic":
        nodes = [helper.make_node("DynamicQuantizeMatMul", ["x", "w8", "ws", "wz"], ["y"], domain="com.microsoft")]
        used = ["w8", "ws", "wz"]
    else:
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            helper.make_node(
                "MatMulIntegerToFloat", ["xq", "w8", "xs", "ws", "xz", "wz"], ["y"], domain="com.microsoft"
            ),
        ]
        used = ["xs", "xz", "w8", "ws", "wz"]
    graph = helper.make_graph(nodes, "gemm", [x], [y], [inits[u] for u in used])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    return model.SerializeToString()


def candidates(shapes, tokens: int, threads: int) -> dict:
    """name -> list of (callable, multiply-adds) over the student's GEMM shapes."""
    import tempfile

    import torch

    from alembert.runtimes.onnxruntime import make_session

    work = Path(tempfile.mkdtemp(prefix="gemm-ceiling-"))
    rng = np.random.default_rng(0)
    out: dict[str, list] = {}
    for k, n in shapes:
        x = rng.uniform(-2, 2, (tokens, k)).astype(np.float32)
        w = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
        macs = tokens * k * n
        labels = {
            "fp32": "onnxruntime fp32",
            "dynamic": "onnxruntime int8 dynamic",
            "static": "onnxruntime int8 static",
        }
        for kind, label in labels.items():
            path = work / f"gemm-{k}x{n}-{kind}.onnx"
            path.write_bytes(matmul_graph(k, n, w, kind))
            session = make_session(path, threads)  # alembert's session options, as its exports run
            out.setdefault(label, []).append((lambda s=session, x=x: s.run(None, {"x": x}), macs))
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        out.setdefault("torch fp32", []).append((lambda a=xt, b=wt: torch.mm(a, b), macs))
        xb, wb = xt.bfloat16(), wt.bfloat16()
        out.setdefault("torch bf16", []).append((lambda a=xb, b=wb: torch.mm(a, b), macs))
        for name, fn in _openvino(k, n, w, x, threads).items():
            out.setdefault(name, []).append((fn, macs))
    shutil.rmtree(work)  # the sessions hold their graphs
    return out


def _openvino(k: int, n: int, w: np.ndarray, x: np.ndarray, threads: int) -> dict:
    """OpenVINO's MatMul in f32 and bf16 (where the CPU computes it), and NNCF's int8 of it."""
    try:
        import nncf
        import openvino as ov
        from openvino import opset13 as ops
    except ImportError:
        return {}
    from alembert.machine import cpu_facts, has_bf16

    param = ops.parameter([-1, k], np.float32, name="x")
    model = ov.Model([ops.matmul(param, ops.constant(w), False, False)], [param], "gemm")
    core = ov.Core()
    out = {}
    precisions = ["f32"] + (["bf16"] if has_bf16(cpu_facts()) else [])
    nncf.set_log_level(50)
    calibration = nncf.Dataset([x[:256]])
    int8 = nncf.quantize(model, calibration, subset_size=1)
    for label, graph, precision in [(f"openvino {p}", model, p) for p in precisions] + [
        ("openvino int8", int8, precisions[-1])
    ]:
        compiled = core.compile_model(
            graph, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": precision}
        )
        request = compiled.create_infer_request()
        out[label] = lambda r=request, x=x: r.infer({0: x})
    return out


def time_all(cands: dict, seconds: float, repeats: int) -> dict:
    """GMAC/s of each candidate over all its shapes, the best of ``repeats`` interleaved rounds."""
    best = {name: 0.0 for name in cands}
    for _ in range(repeats):
        for name, parts in cands.items():
            total_macs, total_s = 0, 0.0
            for fn, macs in parts:
                fn()
                t, runs = time.perf_counter(), 0
                while time.perf_counter() - t < seconds / len(parts):
                    fn()
                    runs += 1
                total_s += time.perf_counter() - t
                total_macs += macs * runs
            best[name] = max(best[name], total_macs / total_s / 1e9)
    return best


def export_macs(folder: Path, seq: int = 128) -> tuple[float, str]:
    """(weight-GEMM multiply-adds per sequence of ``seq`` tokens, the export's precision family)."""
    from alembert.models.load import load_config

    info = json.loads((folder / "alembert_export.json").read_text())
    cfg = load_config(folder)
    h, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    full = seq * (4 * h * h + 2 * h * f)
    last = full if info.get("last_layer") != "first token only" else seq * 2 * h * h + (2 * h * h + 2 * h * f)
    family = "int8" if info.get("quantization") == "int8" else info.get("precision") or "fp32"
    return (layers - 1) * full + last, family.replace("f32", "fp32")


def shapes_of(cfg) -> list[tuple[int, int]]:
    """A BERT layer's weight GEMM shapes (K, N): Q/K/V/output, FFN in, FFN out."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    return [(h, h), (h, f), (f, h)]


def measure_ceiling(model: str | Path, tokens: int, threads: int, seconds: float = 2.0, repeats: int = 3) -> dict:
    """GMAC/s of every runtime and precision here at ``model``'s GEMM shapes (``tokens`` rows)."""
    from alembert.models.load import load_config

    return time_all(candidates(shapes_of(load_config(model)), tokens, threads), seconds, repeats)


def place(folder: Path, seq_s: float, ceiling: dict) -> dict:
    """An export's weight-GEMM work at ``seq_s`` sequences/s of 128 tokens against the best ceiling of
    its own precision family (int8, bf16 or fp32)."""
    macs, family = export_macs(folder)
    same = {n: g for n, g in ceiling.items() if family in n}
    top = max(same, key=same.get) if same else max(ceiling, key=ceiling.get)
    reached = macs * seq_s / 1e9
    return {
        "family": family,
        "seq_s_b32": seq_s,
        "gmac_s": reached,
        "ceiling": top,
        "ceiling_gmac_s": ceiling[top],
        "fraction": reached / ceiling[top],
    }


def describe(placed: dict) -> str:
    return (
        f"({placed['family']}) {placed['seq_s_b32']:.0f} seq/s at 32 x 128 = {placed['gmac_s']:.1f} GMAC/s of weight "
        f"GEMMs, {placed['fraction']:.0%} of the {placed['ceiling']} ceiling ({placed['ceiling_gmac_s']:.1f} GMAC/s)"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from alembert.machine import cpu_facts, cpu_line
    from alembert.measure.speed import batch_workload, fixed_length_inputs, measure
    from alembert.models.load import load_config, load_tokenizer
    from alembert.runtimes import load_any

    cfg = load_config(args.model)
    print(cpu_line(cpu_facts()), f"; {args.threads} thread(s); GEMMs {args.tokens} x {shapes_of(cfg)}", flush=True)
    ceiling = measure_ceiling(args.model, args.tokens, args.threads, args.seconds, args.repeats)
    for name, g in sorted(ceiling.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {g:.1f} GMAC/s |")
    placed = {}
    if args.export:
        texts = ["a gripping, beautifully acted film that never lets go of you, even in its quieter scenes"] * 32
        work = {}
        for folder in map(Path, args.export):
            model = load_any(folder, threads=args.threads)
            inputs = fixed_length_inputs(load_tokenizer(folder), texts, None, 128)
            work[str(folder)] = batch_workload(model, inputs, 32)
        speeds = measure(work, repeats=args.repeats, warmup=1, latency_iters=3)
        for folder in map(Path, args.export):
            placed[str(folder)] = p = place(folder, speeds[str(folder)]["throughput_seq_s"], ceiling)
            print(f"- {folder.name}: {describe(p)}")
    if args.output:
        Path(args.output).write_text(
            json.dumps({"machine": cpu_facts(), "ceiling": ceiling, "exports": placed}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
