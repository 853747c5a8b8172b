"""``run_bench``: size, dev metric and speed of several models in one fair run.

The first model is the reference (normally the teacher): retention and speed-ups
are relative to it. Models are whatever a runtime runs (:mod:`alembert.runtimes`): PyTorch
folders, ONNX exports (``alembert export``), ...; each row names its runtime and version.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from alembert.errors import AlembertError
from alembert.machine import torch_threads
from alembert.measure.report import write_report
from alembert.measure.size import disk_mb, static_table
from alembert.measure.speed import measure


def _names(models: list[str]) -> list[str]:
    """Short labels: the folder name, with its parent where two would collide."""
    short = [Path(m).name or m for m in models]
    return [str(Path(*Path(m).parts[-2:])) if short.count(s) > 1 else s for m, s in zip(models, short, strict=True)]


def _ratio(a, b):
    return a / b if a is not None and b else None


def run_bench(
    models: list[str],
    task: str,
    out_dir: str | Path,
    threads: int | None = None,
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    latency_iters: int = 10,
    batch_size: int = 32,
    seq_len: int | None = None,
    max_eval_samples: int | None = None,
    data_dir: str | Path | None = None,
    eval_batch_size: int = 128,
    data: dict | None = None,
    serving: bool = True,
    *,
    kind,
) -> dict:
    """Measure every model, write bench.json / bench.md / plots into ``out_dir``, return the result.
    ``kind``: the task's kind (:func:`alembert.tasks.task_kind`), whose ``bench`` builds the
    :class:`~alembert.measure.bench_task.BenchTask` that scores and times the models.
    ``seq_len`` defaults to the first model's length, as ``kind.default_max_length`` resolves it for
    every command (the length it was trained with, else 128 for GLUE, 384 for SQuAD, an embedding
    model's max_seq_length or 256). ``data``: your own
    dev file (``dev_file``, ``text_column``, ``text_pair_column``, ``label_column``, ``labels``).
    ``serving``: also time real dev texts at their own lengths (classifier tasks;
    :mod:`alembert.measure.serving`), in as many interleaved repeats (at most 3)."""
    from alembert.machine import cpu_facts
    from alembert.measure.serving import LABELS, measure_serving, serving_workload
    from alembert.models.load import load_config
    from alembert.models.resolve import resolve_model

    if not models:
        raise AlembertError("bench needs at least one model; the first one is the reference")
    if device not in ("cpu", "cuda"):
        raise AlembertError(f"unknown --device {device}; use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise AlembertError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
    bt = kind.bench(task, data_dir, max_eval_samples, max(batch_size, latency_iters), eval_batch_size, data, models[0])
    # no longer than every model's position table (less 2: RoBERTa/MPNet offsets); the same for all
    paths = [resolve_model(m) for m in models]
    configs = [static_table(p) or load_config(p) for p in paths]  # a static model's: its table's shape
    room = min(getattr(c, "max_position_embeddings", 10**6) - 2 for c in configs)
    seq_len = min(seq_len or kind.default_max_length(models[0]), room)  # default: the reference's length

    with torch_threads(threads) as threads:
        rows, workloads, served = [], {}, {}
        serve = serving and bt.serve_a is not None
        for path, config, name in zip(paths, configs, _names(models), strict=True):
            model, tokenizer = bt.load(path, threads)
            model = model.to(device).eval()  # a runtime that runs on the CPU only stays there (its row says so)
            print(f"bench: {name}: evaluating on {bt.dev_examples} dev examples", flush=True)
            metrics = bt.score(model, tokenizer, seq_len)
            workloads[name] = bt.workload(bt, model, tokenizer, seq_len, batch_size)
            if serve:
                served[name] = serving_workload(model, tokenizer, bt.serve_a, bt.serve_b, seq_len, batch_size)
            params, params_no_emb = bt.count(path, config)
            about = model.describe()
            rows.append(
                {
                    "name": name,
                    "path": str(path),
                    "kind": about["kind"],
                    "device": about["device"],
                    "runtime": model.runtime.label(),
                    "attention": about["attention"],
                    "params": params,
                    "params_no_embeddings": params_no_emb,
                    "disk_mb": round(disk_mb(path), 2),
                    "dev_metrics": metrics,
                    "dev_metric": metrics[bt.main_metric],
                }
            )
        print(f"bench: timing {len(rows)} models ({repeats} interleaved repeats)", flush=True)
        load_before = os.getloadavg()[0]  # what competes with the timing, not with the scoring before it
        speeds = measure(workloads, repeats=repeats, warmup=warmup, latency_iters=latency_iters)
        if serve:
            print(f"bench: serving {len(bt.serve_a)} real dev texts at their own lengths", flush=True)
            for name, s in measure_serving(served, repeats=min(repeats, 3), warmup=min(warmup, 1)).items():
                speeds[name]["serving"] = s

    ref = rows[0]
    ref_speed = speeds[ref["name"]]
    for row in rows:
        row.update(speeds[row["name"]])
        row["retention_pct"] = _ratio(100 * row["dev_metric"], ref["dev_metric"])
        row["speedup_throughput"] = _ratio(row["throughput_seq_s"], ref_speed["throughput_seq_s"])
        row["speedup_latency"] = _ratio(ref_speed["latency_ms_median"], row["latency_ms_median"])
        if "serving" in row:
            sv, ref_sv = row["serving"], ref_speed["serving"]
            row["sorted32_sent_s"] = sv["sorted_b32"]["sentences_s"]
            row["arrival32_sent_s"] = sv["arrival_b32"]["sentences_s"]
            row["arrival1_ms_p50"] = sv["arrival_b1"]["ms_p50"]
            row["arrival1_ms_p99"] = sv["arrival_b1"]["ms_p99"]
            row["speedup_sorted32"] = _ratio(sv["sorted_b32"]["sentences_s"], ref_sv["sorted_b32"]["sentences_s"])
    result = {
        "task": bt.name,
        "metric": bt.main_metric,
        "dev_examples": bt.dev_examples,
        "reference": ref["name"],
        "device": device,
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "latency_iters_per_repeat": latency_iters,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "inputs": bt.timing
        or f"real {bt.name} dev texts, each model's own tokenizer, padded/truncated to exactly {seq_len} tokens",
        "timing": bt.timing,
        "serving": (
            {
                "sentences": len(bt.serve_a),
                "modes": LABELS,
                "max_length": seq_len,
                "batch_size": batch_size,
                "singles": min(len(bt.serve_a), 128),
                "repeats": min(repeats, 3),
            }
            if serve
            else None
        ),
        "machine": {
            **cpu_facts(),
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "not set (OpenMP default)"),
            "cpu_count": os.cpu_count(),
            "loadavg_1min_before": load_before,
            "loadavg_1min_after": os.getloadavg()[0],
        },
        "models": rows,
    }
    result["files"] = {k: str(v) for k, v in write_report(result, out_dir).items()}
    return result
