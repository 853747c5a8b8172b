#!/usr/bin/env python
"""Inference export of a sentence-embedding model: alembert vs the paths a user would take instead,
side by side in one process.

The same sentence-transformers model (default ``minilm-l6``, all-MiniLM-L6-v2) is exported

- by alembert: ``alembert export MODEL --quantize auto`` (every variant of ONNX Runtime and
  OpenVINO scored on STS-B dev and timed on this CPU; pooling and normalisation inside the graph);
- by optimum-onnx, as its documentation does for feature extraction: ``ORTModelForFeatureExtraction``
  (export=True), then ``ORTQuantizer`` with ``AutoQuantizationConfig`` for this CPU's instruction set
  (dynamic, per channel);
- by optimum-intel: ``OVModelForFeatureExtraction`` (export=True), then ``OVQuantizer`` (NNCF int8,
  SmoothQuant, fast bias correction) on 300 STS-B training sentences padded to 128; compiled at the
  CPU plugin's default precision, as optimum-intel compiles it;
- plain PyTorch (sentence-transformers' default backend).

The peers' graphs end at the token states; their mean pooling and normalisation (what
sentence-transformers adds after an ONNX/OpenVINO backend) run in numpy inside the timed call.
Every graph is timed here, interleaved (batch 32 x 128 and batch 1 x 128, real STS-B sentences),
and scored by the same code (STS-B dev Spearman). The peers are built in their own virtual
environments (benchmarks/peer_export.py: PEER_ENVS).

    python benchmarks/peer_embed_export.py [--model minilm-l6] [--threads 1] [--output runs/peer-embed-export]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

ONNX_BUILD = r"""
import json, sys, time
from pathlib import Path
model, out, isa = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig
report = {"steps": {}, "graphs": {}}
t = time.time()
ORTModelForFeatureExtraction.from_pretrained(model, export=True).save_pretrained(out / "optimum-onnx-fp32")
report["steps"]["ORTModelForFeatureExtraction.from_pretrained(export=True)"] = f"ok ({time.time() - t:.0f} s)"
report["graphs"]["optimum-onnx fp32"] = str(out / "optimum-onnx-fp32" / "model.onnx")
qconfig = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=True)
try:
    quantizer = ORTQuantizer.from_pretrained(out / "optimum-onnx-fp32")
    quantizer.quantize(save_dir=out / "optimum-onnx-int8", quantization_config=qconfig)
    report["graphs"]["optimum-onnx int8"] = str(next((out / "optimum-onnx-int8").glob("*quantized*.onnx")))
    report["steps"][f"ORTQuantizer AutoQuantizationConfig.{isa}(dynamic, per channel)"] = "ok"
except Exception as exc:
    report["steps"]["ORTQuantizer"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
print(json.dumps(report))
"""


class MeanPooled:
    """A peer graph that returns token states, with sentence-transformers' mean pooling and L2
    normalisation after it (in numpy, inside the timed call): the calling convention of alembert's
    embedding models (``prepare``/``run``, ``.embeddings``, ``dim``)."""

    returns = "embeddings"
    training = False

    def __init__(self, graph: Path, threads: int):
        import torch

        self.device = torch.device("cpu")
        if graph.suffix == ".onnx":
            from alembert.runtimes.onnxruntime import make_session

            session = make_session(graph, threads)
            self.names = [i.name for i in session.get_inputs()]
            self._tokens = lambda feeds: session.run(None, feeds)[0]
            self.how = ""
        else:
            from peer_export import plugin_default_ir

            ir = plugin_default_ir(graph, threads)
            self.names, self._tokens, self.how = ir.input_names, ir.run, f" (computed in {ir.precision})"
        self.dim = None

    def prepare(self, batch):
        from alembert.runtimes.base import int64_feeds

        return int64_feeds(batch, self.names)

    def run(self, feeds):
        states = self._tokens(feeds)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (states * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def __call__(self, **batch):
        from types import SimpleNamespace

        import torch

        return SimpleNamespace(embeddings=torch.from_numpy(self.run(self.prepare(batch))))

    def eval(self):
        return self


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output", default="runs/peer-embed-export")
    p.add_argument("--venv", default=None, help="optimum-onnx's environment (default: peer_export.py's)")
    p.add_argument("--ov-venv", default=None, help="optimum-intel's environment (default: peer_export.py's)")
    p.add_argument("--torch-wheel", default=None)
    p.add_argument("--skip-peers", action="store_true")
    args = p.parse_args(argv)
    import subprocess

    import torch

    torch.set_num_threads(args.threads)
    from peer_export import OV_PEER_BUILD, PEER_ENVS, cpu_isa_config, ensure_venv, run_peer

    from alembert.embedding.data import load_texts
    from alembert.embedding.evaluate import stsb_pairs, stsb_zeroshot
    from alembert.machine import cpu_facts, cpu_line
    from alembert.measure.speed import batch_workload, measure
    from alembert.models.resolve import resolve_model
    from alembert.runtimes import load_any_embedding

    facts = cpu_facts()
    out = Path(args.output).absolute()
    out.mkdir(parents=True, exist_ok=True)
    src = resolve_model(args.model)
    print(cpu_line(facts), f"; {args.threads} thread(s)", flush=True)
    cmd = [sys.executable, "-m", "alembert.cli.main", "export", str(src), "--quantize", "auto"]
    cmd += ["--output", str(out / "alembert"), "--overwrite"] + (["--data-dir", args.data_dir] if args.data_dir else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"alembert export failed: {proc.stderr.strip()[-400:]}")
    info = json.loads((out / "alembert" / "alembert_export.json").read_text())
    print(f"alembert: {info['auto']['reason']}", flush=True)

    variants = {"PyTorch fp32 (sentence-transformers' default)": load_any_embedding(src)}
    variants[f"alembert {info['variant']}"] = load_any_embedding(out / "alembert", threads=args.threads)
    steps = {}
    if not args.skip_peers:
        calib = out / "calibration.json"
        calib.write_text(json.dumps(load_texts([], ["stsb"], args.data_dir, None, 300)))
        py = ensure_venv(
            Path(args.venv or REPO / PEER_ENVS["optimum-onnx"][0]), args.torch_wheel, PEER_ENVS["optimum-onnx"][1]
        )
        onnx_peer = run_peer(py, ONNX_BUILD, [str(src), str(out), cpu_isa_config(facts)], args.threads, "optimum-onnx")
        py = ensure_venv(
            Path(args.ov_venv or REPO / PEER_ENVS["optimum-intel"][0]), args.torch_wheel, PEER_ENVS["optimum-intel"][1]
        )
        ov_peer = run_peer(
            py,
            OV_PEER_BUILD,
            [str(src), str(out), str(calib), "OVModelForFeatureExtraction"],
            args.threads,
            "optimum-intel",
        )
        tokenizer = variants[f"alembert {info['variant']}"][1]
        for report in (onnx_peer, ov_peer):
            steps.update(report["steps"])
            for name, graph in report["graphs"].items():
                model = MeanPooled(Path(graph), args.threads)
                model.dim = info["dim"]
                variants[name + model.how] = (model, tokenizer)
    a, b, _ = stsb_pairs(args.data_dir)
    texts = [(a + b)[i] for i in range(32)]
    rows = {}
    for name, (model, tok) in variants.items():
        rows[name] = {"spearman": stsb_zeroshot(model, tok, 128, 64, args.data_dir)["spearman"]}
        print(f"scored {name}: STS-B {rows[name]['spearman']:.4f}", flush=True)
    work = {}
    for name, (model, tok) in variants.items():
        enc = tok(texts, padding="max_length", truncation=True, max_length=128, return_tensors="pt")
        work[name] = batch_workload(model, dict(enc), 32)
    speeds = measure(work, repeats=args.repeats, warmup=2, latency_iters=10)
    ref = speeds["PyTorch fp32 (sentence-transformers' default)"]["throughput_seq_s"]
    lines = ["| variant | STS-B Spearman | seq/s @32x128 | x PyTorch | ms @1x128 |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        s = speeds[name]
        r |= {"seq_s_b32": s["throughput_seq_s"], "ms_b1": s["latency_ms_median"]}
        lines.append(
            f"| {name} | {r['spearman']:.4f} | {r['seq_s_b32']:.1f} | {r['seq_s_b32'] / ref:.2f}x | {r['ms_b1']:.2f} |"
        )
    mine = rows[f"alembert {info['variant']}"]
    peers = {n: r for n, r in rows.items() if n.startswith("optimum")}
    if peers:
        best32 = max(peers, key=lambda n: peers[n]["seq_s_b32"])
        best1 = min(peers, key=lambda n: peers[n]["ms_b1"])
        lines += [
            "",
            f"- vs the best peer at batch 32 x 128 ({best32}): "
            f"{mine['seq_s_b32'] / peers[best32]['seq_s_b32']:.2f}x, "
            f"STS-B {mine['spearman'] - peers[best32]['spearman']:+.4f}",
            f"- vs the best peer at batch 1 x 128 ({best1}): "
            f"{peers[best1]['ms_b1'] / mine['ms_b1']:.2f}x lower latency",
        ]
    lines += ["", f"{cpu_line(facts)}; {args.threads} thread(s); median of {args.repeats} interleaved repeats"]
    if steps:
        lines.append("peer steps: " + "; ".join(f"{k}: {v}" for k, v in steps.items()))
    text = "\n".join(lines)
    print(text)
    (out / "peer_embed_export.md").write_text(text + "\n")
    (out / "peer_embed_export.json").write_text(
        json.dumps({"machine": facts, "rows": rows, "alembert": info["auto"], "steps": steps}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
