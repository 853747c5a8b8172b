#!/usr/bin/env python
"""Static int8 on ONNX Runtime, before and after the integer-MatMul rewrite, profiled side by side.

Builds from a classifier's fp32 export graph: dynamic int8 (alembert's ``int8-dynamic``), the QDQ
graph ``onnxruntime.quantization.quantize_static`` writes (per-channel int8 weights, uint8
activations calibrated on training texts) from the graph as the ``int8-static`` variant gave it
(no types past onnxruntime's fused operators, so only the first layer's activations were
quantised) and with the types, and that typed graph rewritten to integer MatMuls
(:mod:`alembert.export.static_int8`, what the variant is now). Each is timed
interleaved (batch 32 x 128 and batch 1 x 128, real dev sentences, 1 thread), scored on the dev set,
checked for batch invariance (each of 32 sentences alone vs inside the batch: max |logit gap|), and
profiled (onnxruntime's per-operator kernel time at batch 32).

    python benchmarks/static_int8_profile.py --model runs/demo/student [--task sst2] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def profile(graph: Path, feeds: dict, runs: int = 3) -> dict[str, float]:
    """Share of kernel time per operator type over ``runs`` batches."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(graph.with_suffix(""))
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    time_by_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            time_by_op[e["args"]["op_name"]] += e["dur"]
    total = sum(time_by_op.values())
    return {op: t / total for op, t in time_by_op.most_common()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a fine-tuned classifier (PyTorch folder)")
    p.add_argument("--task", default="sst2")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    import onnx
    import torch

    torch.set_num_threads(1)

    from alembert.classification.evaluate import evaluate_model
    from alembert.config.schema import DataConfig
    from alembert.data.load import load_split, resolve_task
    from alembert.data.tokenize import tokenize_dataset
    from alembert.export.auto import training_calibration
    from alembert.export.graph import quantize_int8
    from alembert.export.onnx import export_onnx
    from alembert.export.static_int8 import calibrated_qdq, integer_matmuls
    from alembert.machine import cpu_facts, cpu_line
    from alembert.measure.speed import batch_workload, fixed_length_inputs, measure
    from alembert.models.load import load_tokenizer
    from alembert.runtimes.onnxruntime import graph_model

    cfg = DataConfig(task=args.task, data_dir=args.data_dir, max_length=128)
    task = resolve_task(cfg)
    dev = load_split(cfg, task, "dev")
    tokenizer = load_tokenizer(args.model)
    work = Path(tempfile.mkdtemp(prefix="static-int8-"))
    export_onnx(args.model, work / "fp32")
    fp32 = work / "fp32" / "model.onnx"
    names = [i.name for i in onnx.load(fp32, load_external_data=False).graph.input]
    calibration = training_calibration(cfg, task, tokenizer, names)

    untyped, typed = "int8 static QDQ, fused ops untyped (before)", "int8 static QDQ, typed"
    graphs = {"fp32": fp32, "int8 dynamic": work / "dynamic.onnx", untyped: work / "qdq-untyped.onnx"}
    graphs[typed] = work / "qdq.onnx"
    quantize_int8(fp32, graphs["int8 dynamic"])
    calibrated_qdq(fp32, graphs[untyped], calibration.batches, typed=False)  # as the variant was built before
    calibrated_qdq(fp32, graphs[typed], calibration.batches)
    rewritten = onnx.load(graphs[typed])
    integer_matmuls(rewritten)
    graphs["int8 static, integer MatMuls (after)"] = work / "static.onnx"
    onnx.save(rewritten, graphs["int8 static, integer MatMuls (after)"])

    texts = [dev["text_a"][i] for i in range(32)]
    inputs = fixed_length_inputs(tokenizer, texts, None, 128)
    feeds = {n: inputs[n].numpy().astype(np.int64) if n in inputs else None for n in names}
    feeds = {n: v if v is not None else np.zeros_like(feeds["input_ids"]) for n, v in feeds.items()}
    models = {name: graph_model(g, "logits", threads=1) for name, g in graphs.items()}
    speeds = measure({n: batch_workload(m, inputs, 32) for n, m in models.items()}, repeats=args.repeats)
    tokenized = tokenize_dataset(dev, tokenizer, cfg.max_length)
    print(cpu_line(cpu_facts()), "; 1 thread;", f"{len(dev)} {task.name} dev sentences")
    print("\n| graph | dev | seq/s @32x128 | ms @1x128 | batch gap | top operators @32 (share of kernel time) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, model in models.items():
        acc = evaluate_model(model, tokenizer, task, tokenized)[task.main_metric]
        together = model.run(feeds)
        alone = np.concatenate([model.run({n: v[i : i + 1] for n, v in feeds.items()}) for i in range(32)])
        ops = profile(graphs[name], feeds)
        top = ", ".join(f"{op} {share:.0%}" for op, share in list(ops.items())[:5])
        s = speeds[name]
        print(
            f"| {name} | {acc:.4f} | {s['throughput_seq_s']:.1f} | {s['latency_ms_median']:.2f} | "
            f"{np.abs(alone - together).max():.2e} | {top} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
