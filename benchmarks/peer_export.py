#!/usr/bin/env python
"""Inference export: alembert vs the path a user would take instead, side by side, one process.

The same fine-tuned student is exported

- by alembert: ``alembert export --quantize auto`` (the variant of ONNX Runtime or OpenVINO it
  measures to be the fastest on this CPU within 1 point of dev accuracy), and the teacher the same
  way (teacher-int8: "why not just quantise the teacher?");
- by optimum-intel, the path sentence-transformers' efficiency guide points x86 users to:
  ``OVModelForSequenceClassification.from_pretrained(export=True)``, then ``OVQuantizer`` with
  ``OVQuantizationConfig`` (NNCF post-training int8: SmoothQuant, fast bias correction) on 300 of the
  task's training sentences padded to 128, as its documentation's example does; timed compiled as
  optimum-intel compiles it (the CPU plugin's default precision: bf16 where the CPU has it);
- by optimum-onnx, the way its documentation says: ``optimum-cli export onnx --task
  text-classification``, then ``ORTQuantizer`` with ``AutoQuantizationConfig`` for this CPU's
  instruction set (``avx512_vnni``, ``avx512`` or ``avx2``, dynamic, per channel); then
  ``ORTOptimizer`` at O2 followed by the same quantiser. Where ``ORTQuantizer`` fails (its
  shape inference on the O2 graph), the fallback its error message suggests (onnxruntime's
  ``quantize_dynamic``, per channel, ``DefaultTensorType`` float) is used and the failure reported;
  the plain export + ``quantize_dynamic`` is timed as well (the row most tutorials show);
- by plain PyTorch: fp32 teacher and student, and ``torch.ao`` dynamic int8 of the student
  (``quantize_dynamic`` on the Linear layers).

Then the limit (``--no-ceiling`` skips it): each runtime's weight-GEMM throughput at the student's shapes on
this CPU (benchmarks/gemm_ceiling.py) and the fraction of the best one of its precision that alembert's
chosen student export reaches at batch 32.

optimum-onnx pins transformers < 4.58 and optimum-intel its own transformers and huggingface-hub,
so each lives in its own virtual environment (``--venv``, default ``.cache/peer-venv``;
``--ov-venv``, default ``.cache/ov-peer-venv``), created once and reused: torch first (the CPU
wheel given by ``--torch-wheel``, or the version this project runs; an unpinned torch pulls
CUDA), then the peer's packages (:data:`PEER_ENVS`). The peer graphs are
built there; every graph is then timed here, in this process, with the same onnxruntime
session options (alembert.runtimes.onnxruntime.make_session: fixed threads, no spinning, denormals
flushed), interleaved round-robin (alembert.measure.speed / serving), on the same inputs:
real SST-2 dev sentences padded to 128 tokens (batch 32 and batch 1), and at their own lengths
(arrival order batch 1 p50/p90/p99, arrival and length-sorted batches of 32). Dev accuracy of
every variant is scored by the same code (alembert's evaluate_model).

    python benchmarks/peer_export.py --student runs/demo/student --teacher runs/demo/teacher \\
        [--threads 1] [--repeats 5] [--output runs/peer-export] [--skip-peers]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# Run inside the peer environment: optimum's documented export/optimise/quantise path.
PEER_BUILD = r"""
import json, subprocess, sys, traceback
from pathlib import Path
student, out, isa = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
report = {"steps": {}}
def first_line(exc):
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
def fallback(src, dst):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
fp32 = out / "optimum-fp32"
cmd = [str(Path(sys.executable).with_name("optimum-cli")), "export", "onnx", "--model", str(student),
       "--task", "text-classification", str(fp32)]
proc = subprocess.run(cmd, capture_output=True, text=True)
step = "optimum-cli export onnx"
report["steps"][step] = "ok" if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1][:300]
if proc.returncode != 0:
    print(json.dumps(report)); sys.exit(0)
from optimum.onnxruntime import ORTOptimizer, ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig, OptimizationConfig
qconfig = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=True)
report["quantization_config"] = f"AutoQuantizationConfig.{isa}(is_static=False, per_channel=True)"
graphs = {"optimum fp32": str(fp32 / "model.onnx")}
def quantize(name, folder, file_name):
    try:
        quantizer = ORTQuantizer.from_pretrained(folder, file_name=file_name)
        quantizer.quantize(save_dir=out / name, quantization_config=qconfig)
        graphs[name] = str(next((out / name).glob("*quantized*.onnx")))
        report["steps"][f"{name}: ORTQuantizer"] = "ok"
    except Exception as exc:
        report["steps"][f"{name}: ORTQuantizer"] = "failed: " + first_line(exc)
        (out / name).mkdir(parents=True, exist_ok=True)
        dst = out / name / "model_fallback_quantize_dynamic.onnx"
        fallback(str(folder / file_name), str(dst))
        graphs[name + " (quantize_dynamic fallback)"] = str(dst)
        report["steps"][f"{name}: fallback quantize_dynamic"] = "ok"
quantize("optimum int8", fp32, "model.onnx")
qd = out / "optimum-fp32-quantize-dynamic.onnx"
fallback(str(fp32 / "model.onnx"), str(qd))
graphs["optimum + quantize_dynamic int8"] = str(qd)
try:
    o2 = OptimizationConfig(optimization_level=2)
    ORTOptimizer.from_pretrained(fp32).optimize(save_dir=out / "optimum-o2", optimization_config=o2)
    report["steps"]["ORTOptimizer O2"] = "ok"
    quantize("optimum O2 int8", out / "optimum-o2", "model_optimized.onnx")
except Exception as exc:
    report["steps"]["ORTOptimizer O2"] = "failed: " + first_line(exc)
report["graphs"] = graphs
import importlib.metadata as md
report["versions"] = {p: md.version(p) for p in ("optimum-onnx", "optimum", "transformers", "onnxruntime", "torch")}
print(json.dumps(report))
"""


# Run inside the OpenVINO peer environment: optimum-intel's documented path (export, then OVQuantizer's
# post-training int8 with its defaults: SmoothQuant, fast bias correction) on the task's training texts.
OV_PEER_BUILD = r"""
import json, sys, time
from pathlib import Path
student, out, calibration = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
kind = sys.argv[4] if len(sys.argv) > 4 else "OVModelForSequenceClassification"  # or OVModelForFeatureExtraction
report = {"steps": {}, "graphs": {}}
import datasets
import optimum.intel
from optimum.intel import OVConfig, OVQuantizationConfig, OVQuantizer
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(student)
t = time.time()
model = getattr(optimum.intel, kind).from_pretrained(student, export=True)
model.save_pretrained(out / "optimum-intel-fp32")
report["graphs"]["optimum-intel fp32"] = str(out / "optimum-intel-fp32" / "openvino_model.xml")
report["steps"][f"{kind}.from_pretrained(export=True)"] = f"ok ({time.time() - t:.0f} s)"
texts = json.loads(calibration.read_text())
def preprocess(batch):
    return tokenizer(batch["sentence"], padding="max_length", max_length=128, truncation=True)
dataset = datasets.Dataset.from_dict({"sentence": texts}).map(preprocess, batched=True, remove_columns=["sentence"])
t = time.time()
OVQuantizer.from_pretrained(model).quantize(
    calibration_dataset=dataset, save_directory=out / "optimum-intel-int8",
    ov_config=OVConfig(quantization_config=OVQuantizationConfig(num_samples=len(texts))))
report["graphs"]["optimum-intel int8"] = str(out / "optimum-intel-int8" / "openvino_model.xml")
report["steps"][f"OVQuantizer.quantize (int8, {len(texts)} texts)"] = f"ok ({time.time() - t:.0f} s)"
import importlib.metadata as md
report["versions"] = {p: md.version(p) for p in ("optimum-intel", "openvino", "nncf", "transformers", "torch")}
print(json.dumps(report))
"""
PEER_ENVS = {  # name -> (default folder, what pip installs after torch)
    "optimum-onnx": (".cache/peer-venv", ["optimum-onnx[onnxruntime]", "transformers<4.58"]),
    "optimum-intel": (".cache/ov-peer-venv", ["optimum-intel[openvino,nncf]", "datasets", "huggingface-hub<1.22"]),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", required=True, help="fine-tuned student (PyTorch folder)")
    p.add_argument(
        "--teacher", required=True, help="its fine-tuned teacher (PyTorch folder): the fp32 reference and teacher-int8"
    )
    p.add_argument("--task", default="sst2")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--repeats", type=int, default=5, help="interleaved repeats of the fixed-length timing (serving: at most 3)"
    )
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--output", default="runs/peer-export")
    p.add_argument(
        "--venv", default=str(REPO / PEER_ENVS["optimum-onnx"][0]), help="optimum-onnx's own environment (created once)"
    )
    p.add_argument(
        "--ov-venv",
        default=str(REPO / PEER_ENVS["optimum-intel"][0]),
        help="optimum-intel's own environment (created once; it pins its own transformers and huggingface-hub)",
    )
    p.add_argument(
        "--torch-wheel",
        default=None,
        help="torch wheel for the peer environment (default: "
        "a CPU wheel of this torch in /opt/wheels, else torch==this version)",
    )
    p.add_argument(
        "--skip-peers", action="store_true", help="alembert and PyTorch variants only (no optimum environment)"
    )
    p.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the GEMM ceiling (benchmarks/gemm_ceiling.py) and the fraction of it the student reaches",
    )
    return p.parse_args(argv)


def cpu_isa_config(facts: dict) -> str:
    """optimum's AutoQuantizationConfig for this CPU, as its documentation picks one."""
    isa = facts.get("isa", [])
    if "AVX512-VNNI" in isa:
        return "avx512_vnni"
    if "AVX-512" in isa:
        return "avx512"
    return "avx2"


def ensure_venv(venv: Path, torch_wheel: str | None, packages: list[str]) -> Path:
    """A peer environment's python, created and filled on first use (a marker records it is complete):
    torch first (the CPU wheel; an unpinned torch pulls CUDA), then ``packages``."""
    import torch

    py = venv / "bin" / "python"
    marker = venv / ".alembert-peer-ready"
    if marker.is_file() and py.exists():
        return py
    version = torch.__version__.split("+")[0]
    wheel = torch_wheel or next(
        iter(
            sorted(
                glob.glob(f"/opt/wheels/torch-{version}+cpu-cp{sys.version_info.major}{sys.version_info.minor}-*.whl")
            )
        ),
        None,
    )
    print(f"peer env: creating {venv} (torch {wheel or version}, then {' '.join(packages)})", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "-q", wheel or f"torch=={version}"],
        [str(py), "-m", "pip", "install", "-q", *packages],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            err = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location")]
            raise SystemExit(f"peer env: `{' '.join(cmd[-3:])}` failed: {' | '.join(err[-3:])[:600]}")
    marker.write_text(
        json.dumps({"torch": wheel or version, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    )
    return py


def run_peer(py: Path, script: str, args_: list[str], threads: int, what: str) -> dict:
    """``script`` run by the peer environment's python; its last stdout line is its JSON report."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": ""}
    proc = subprocess.run([str(py), "-c", script, *args_], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(
            f"{what} build failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_peers(args, out: Path, facts: dict, calibration: list[str]) -> dict:
    """Both peers' graphs: optimum-onnx's ONNX Runtime path and optimum-intel's OpenVINO + NNCF path."""
    student = str(Path(args.student).resolve())
    py = ensure_venv(Path(args.venv), args.torch_wheel, PEER_ENVS["optimum-onnx"][1])
    onnx_peer = run_peer(py, PEER_BUILD, [student, str(out), cpu_isa_config(facts)], args.threads, "optimum-onnx")
    calib = out / "calibration.json"
    calib.write_text(json.dumps(calibration))
    py = ensure_venv(Path(args.ov_venv), args.torch_wheel, PEER_ENVS["optimum-intel"][1])
    ov_peer = run_peer(py, OV_PEER_BUILD, [student, str(out), str(calib)], args.threads, "optimum-intel")
    return {
        "steps": {
            **{f"optimum-onnx: {k}": v for k, v in onnx_peer["steps"].items()},
            **{f"optimum-intel: {k}": v for k, v in ov_peer["steps"].items()},
        },
        "graphs": {**onnx_peer.get("graphs", {}), **ov_peer["graphs"]},
        "versions": {"optimum-onnx": onnx_peer.get("versions"), "optimum-intel": ov_peer.get("versions")},
    }


def plugin_default_ir(graph: Path, threads: int):
    """An OpenVINO IR compiled as optimum-intel compiles it: the CPU plugin's default precision (bf16 on
    CPUs with AVX512-BF16 or AMX), recorded as ``.precision``; ``run`` gives its first output."""
    from alembert.runtimes.openvino import OvClassifier

    class PluginDefault(OvClassifier):
        def _compile(self, model, threads, precision):
            import openvino

            config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
            self.compiled = openvino.Core().compile_model(str(model), "CPU", config)
            self.request = self.compiled.create_infer_request()
            self.input_names = [i.get_any_name() for i in self.compiled.inputs]
            self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()

    return PluginDefault.from_ir(graph, threads)


def peer_model(graph: Path, threads: int):
    """A peer graph, run as its tool runs it: an ONNX graph in the same onnxruntime session options as
    alembert's; an OpenVINO IR as :func:`plugin_default_ir` compiles it (its precision in the row's name)."""
    from alembert.runtimes import runtime_for

    if graph.suffix == ".onnx":
        return runtime_for(graph).load_classifier(graph, threads=threads), ""
    model = plugin_default_ir(graph, threads)
    return model, f" (computed in {model.precision})"


def alembert_export(model: str, dst: Path, args) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "alembert.cli.main",
        "export",
        model,
        "--quantize",
        "auto",
        "--output",
        str(dst),
        "--overwrite",
        "--task",
        args.task,
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.max_eval_samples:
        cmd += ["--max-eval-samples", str(args.max_eval_samples)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"alembert export {model} failed: {proc.stderr.strip()[-400:]}")
    return json.loads((dst / "alembert_export.json").read_text())


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    from alembert.classification.evaluate import evaluate_model
    from alembert.config.schema import DataConfig
    from alembert.data.load import load_split, resolve_task
    from alembert.data.tokenize import tokenize_dataset
    from alembert.machine import cpu_facts, cpu_line
    from alembert.measure.serving import measure_serving, serving_workload
    from alembert.measure.speed import batch_workload, fixed_length_inputs, measure
    from alembert.models.load import load_classifier
    from alembert.runtimes import load_any
    from alembert.runtimes.pytorch import TorchModel

    facts = cpu_facts()
    out = Path(args.output).absolute()
    out.mkdir(parents=True, exist_ok=True)
    print(cpu_line(facts), f"; {args.threads} thread(s); load {os.getloadavg()[0]:.1f}", flush=True)

    exports = {
        "student": alembert_export(args.student, out / "alembert-student", args),
        "teacher": alembert_export(args.teacher, out / "alembert-teacher", args),
    }
    for k, info in exports.items():
        print(f"alembert {k}: {info['auto']['reason']}", flush=True)
    # scored and served at 128 tokens, the length every variant is timed at
    cfg = DataConfig(task=args.task, data_dir=args.data_dir, max_eval_samples=args.max_eval_samples, max_length=128)
    task = resolve_task(cfg)
    dev = load_split(cfg, task, "dev")
    calibration = list(load_split(cfg.model_copy(update={"max_train_samples": 300}), task, "train")["text_a"])
    peers = None if args.skip_peers else build_peers(args, out, facts, calibration)
    if peers:
        for step, status in peers["steps"].items():
            print(f"{step}: {status}", flush=True)

    tok_s = AutoTokenizer.from_pretrained(args.student)
    tok_t = AutoTokenizer.from_pretrained(args.teacher)

    variants = {}  # name -> (model, tokenizer, group)
    variants["teacher fp32 PyTorch"] = (load_any(args.teacher, task).eval(), tok_t, "reference")
    variants["teacher alembert " + exports["teacher"]["variant"]] = (
        load_any(out / "alembert-teacher", task, args.threads),
        tok_t,
        "alembert",
    )
    alembert_name = "student alembert " + exports["student"]["variant"]
    variants[alembert_name] = (load_any(out / "alembert-student", task, args.threads), tok_s, "alembert")
    variants["student fp32 PyTorch"] = (load_any(args.student, task).eval(), tok_s, "pytorch")
    with warnings.catch_warnings():  # torch.ao's eager quantisation prints a migration notice: still the plain path
        warnings.simplefilter("ignore")
        ao = torch.ao.quantization.quantize_dynamic(
            load_classifier(args.student, task).eval(), {torch.nn.Linear}, dtype=torch.qint8
        )
    variants["student torch.ao dynamic int8"] = (TorchModel(ao), tok_s, "pytorch")
    for name, graph in (peers or {}).get("graphs", {}).items():
        model, how = peer_model(Path(graph), args.threads)
        variants["student " + name + how] = (model, tok_s, "peer")

    texts = [dev["text_a"][i % len(dev)] for i in range(32)]
    rows = {}
    for name, (model, tok, group) in variants.items():
        t = time.perf_counter()
        acc = evaluate_model(model, tok, task, tokenize_dataset(dev, tok, cfg.max_length))[task.main_metric]
        rows[name] = {"group": group, "dev": acc}
        print(f"scored {name}: dev {task.main_metric} {acc:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    work = {}
    for name, (model, tok, _) in variants.items():
        inputs = fixed_length_inputs(tok, texts, None, 128)
        work[name] = batch_workload(model, inputs, 32)
    print(f"timing {len(work)} variants at 32x128 and 1x128 ({args.repeats} interleaved repeats)", flush=True)
    speeds = measure(work, repeats=args.repeats, warmup=2, latency_iters=10)
    served = {
        name: serving_workload(model, tok, list(dev["text_a"]), None, cfg.max_length)
        for name, (model, tok, _) in variants.items()
    }
    print(f"serving {len(dev)} dev sentences at their own lengths", flush=True)
    serving = measure_serving(served, repeats=min(args.repeats, 3))
    for name, r in rows.items():
        s, sv = speeds[name], serving[name]
        r |= {
            "seq_s_b32x128": s["throughput_seq_s"],
            "ms_b1x128": s["latency_ms_median"],
            "ms_b1x128_p90": s["latency_ms_p90"],
            "sorted_b32_sent_s": sv["sorted_b32"]["sentences_s"],
            "arrival_b32_sent_s": sv["arrival_b32"]["sentences_s"],
            "arrival_b1_ms_p50": sv["arrival_b1"]["ms_p50"],
            "arrival_b1_ms_p90": sv["arrival_b1"]["ms_p90"],
            "arrival_b1_ms_p99": sv["arrival_b1"]["ms_p99"],
        }

    ref = rows["teacher fp32 PyTorch"]
    mine = rows[alembert_name]
    peer_rows = {n: r for n, r in rows.items() if r["group"] == "peer"}
    summary = {"vs_teacher_fp32_b32": mine["seq_s_b32x128"] / ref["seq_s_b32x128"]}
    if peer_rows:
        best32 = max(peer_rows, key=lambda n: peer_rows[n]["seq_s_b32x128"])
        best1 = min(peer_rows, key=lambda n: peer_rows[n]["ms_b1x128"])
        summary |= {
            "best_peer_b32": best32,
            "vs_best_peer_b32": mine["seq_s_b32x128"] / peer_rows[best32]["seq_s_b32x128"],
            "best_peer_b1": best1,
            "vs_best_peer_b1": peer_rows[best1]["ms_b1x128"] / mine["ms_b1x128"],
            "dev_minus_best_peer_b32": mine["dev"] - peer_rows[best32]["dev"],
            "vs_best_peer_sorted": mine["sorted_b32_sent_s"] / max(r["sorted_b32_sent_s"] for r in peer_rows.values()),
        }
    summary |= {
        "alembert_sorted_b32_sent_s": mine["sorted_b32_sent_s"],
        "alembert_arrival_b1_ms_p50": mine["arrival_b1_ms_p50"],
        "alembert_arrival_b1_ms_p99": mine["arrival_b1_ms_p99"],
    }

    head = [
        "variant",
        f"dev {task.main_metric}",
        "seq/s @32x128",
        "x teacher",
        "ms @1x128",
        "sent/s sorted @32",
        "sent/s arrival @32",
        "ms @1 real p50/p90/p99",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['dev']:.4f} | {r['seq_s_b32x128']:.1f} | {r['seq_s_b32x128'] / ref['seq_s_b32x128']:.2f}x "
            f"| {r['ms_b1x128']:.2f} | {r['sorted_b32_sent_s']:.0f} | {r['arrival_b32_sent_s']:.0f} | "
            f"{r['arrival_b1_ms_p50']:.2f} / {r['arrival_b1_ms_p90']:.2f} / {r['arrival_b1_ms_p99']:.2f} |"
        )
    ratio_lines = [
        f"- alembert int8 student vs fp32 PyTorch teacher at batch 32: {summary['vs_teacher_fp32_b32']:.2f}x"
    ]
    if not args.no_ceiling:  # the limit: this CPU's GEMM throughput at the student's shapes, measured here
        from gemm_ceiling import describe, measure_ceiling, place

        print("timing the GEMM ceiling at the student's shapes", flush=True)
        ceiling = measure_ceiling(args.student, 32 * 128, args.threads, seconds=1.0, repeats=2)
        summary["gemm_ceiling"] = {
            "ceilings": ceiling,
            **place(out / "alembert-student", mine["seq_s_b32x128"], ceiling),
        }
        ratio_lines.append(
            f"- the student's chosen export against this CPU's GEMM ceiling: {describe(summary['gemm_ceiling'])}"
        )
    if peer_rows:
        ratio_lines += [
            f"- vs the best peer at batch 32 x 128 ({summary['best_peer_b32']}): {summary['vs_best_peer_b32']:.2f}x "
            f"throughput, dev {summary['dev_minus_best_peer_b32'] * 100:+.2f} points",
            f"- vs the best peer at batch 1 x 128 ({summary['best_peer_b1']}): "
            f"{summary['vs_best_peer_b1']:.2f}x lower latency",
            f"- vs the best peer on length-sorted real sentences: {summary['vs_best_peer_sorted']:.2f}x",
        ]
    ratio_lines.append(
        f"- alembert int8 student on real {task.name} dev sentences: {summary['alembert_sorted_b32_sent_s']:.0f} "
        f"sentences/s length-sorted @32; batch 1 in arrival order p50 {summary['alembert_arrival_b1_ms_p50']:.2f} ms, "
        f"p99 {summary['alembert_arrival_b1_ms_p99']:.2f} ms"
    )
    conditions = (
        f"{cpu_line(facts)}; {args.threads} thread(s); {len(dev)} {task.name} dev sentences; fixed-length rows: the "
        f"first 32 padded to 128 tokens, median of {args.repeats} interleaved repeats; real rows: dev sentences at "
        f"their own lengths; load {os.getloadavg()[0]:.1f} after; identical onnxruntime session options for every graph"
    )
    text = "\n".join(lines) + "\n\n" + "\n".join(ratio_lines) + "\n\n" + conditions + "\n"
    if peers:
        text += (
            "\npeer steps: "
            + "; ".join(f"{k}: {v}" for k, v in peers["steps"].items())
            + f" ({peers.get('versions')})\n"
        )
    report = {
        "machine": facts,
        "threads": args.threads,
        "repeats": args.repeats,
        "rows": rows,
        "summary": summary,
        "alembert_exports": {k: v["auto"] for k, v in exports.items()},
        "peers": peers,
        "conditions": conditions,
    }
    (out / "peer_export.json").write_text(json.dumps(report, indent=2))
    (out / "peer_export.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
