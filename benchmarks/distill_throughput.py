#!/usr/bin/env python
"""Distillation throughput: alembert vs a plain ``transformers.Trainer`` KD loop vs the student alone.

Variants (each in its own subprocess, so peak RSS is per variant; every child gets a
fresh, empty ALEMBERT_CACHE, so alembert's teacher cache is cold and its build is timed):

  a  alembert ``distill`` with the ``kd`` recipe (teacher cache, length-grouped batches)
  b  a Trainer subclass whose ``compute_loss`` runs the teacher every step, dynamic padding,
     random batches: the way most users write KD; same loss (0.5 KD at T=2 + 0.5 CE)
  c  alembert ``distill`` with the ``ce`` recipe: the student alone, no teacher (the floor)

Same teacher, same student (teacher layers 0,2,4 copied), same optimiser (AdamW, weight
decay 0.01, linear schedule with 10% warm-up, clip 1.0), batch size, epochs, seed,
threads and precision (``--mixed-precision bf16``: Accelerate's autocast for every variant,
the baseline's teacher included; alembert's teacher cache is computed under it too).
Dev is evaluated once, at the end, with alembert's ``evaluate_model``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

VARIANTS = {
    "a": "alembert kd (teacher cache + length groups)",
    "b": "Trainer KD baseline (teacher every step)",
    "c": "alembert student alone (ce, floor)",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder (or alembert alias)")
    p.add_argument("--task", default="sst2")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument(
        "--mixed-precision",
        choices=["no", "bf16"],
        default="no",
        help="bf16: autocast in every variant (fast on CPUs with AMX and on recent GPUs)",
    )
    p.add_argument("--student-layers", default="0,2,4", help="0-based teacher layers kept in the student")
    p.add_argument("--data-dir", default=None, help="glue_data folder (default: alembert's)")
    p.add_argument("--output", default="runs/bench-throughput")
    p.add_argument("--only", default="a,b,c", help="comma-separated subset of a,b,c")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="variants run side by side, each child pinned to its own --threads cores "
        "(needs jobs x threads <= CPUs); the longest (b) starts first",
    )
    p.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)  # child mode
    p.add_argument("--result", help=argparse.SUPPRESS)  # the child writes its JSON here
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- children


def run_alembert(args, recipe: str) -> dict:
    from alembert.config.load import build_config
    from alembert.config.schema import DistillConfig
    from alembert.models.student import parse_layers
    from alembert.tasks import task_kind
    from alembert.training.loop import Callbacks

    cfg = build_config(
        DistillConfig,
        None,
        {
            "teacher": args.teacher,
            "recipe": recipe,
            "output_dir": str(Path(args.output) / f"variant-{args.variant}"),
            "overwrite": True,
            "student.layers": parse_layers(args.student_layers),
            "data.task": args.task,
            "data.data_dir": args.data_dir,
            "data.max_length": args.max_length,
            "data.max_train_samples": args.max_train_samples,
            "data.transfer": "none",  # the same rows as the hand-written loop: no transfer text
            "train.epochs": args.epochs,
            "train.batch_size": args.batch_size,
            "train.lr": args.lr,
            "train.seed": args.seed,
            "train.threads": args.threads,
            "train.mixed_precision": args.mixed_precision,
            "train.eval_every": 10**9,  # evaluate once, after the last step, like the baseline
        },
    )
    callbacks = Callbacks()  # its timers see the teacher-cache build, the loop and the evaluations inside it
    summary = task_kind(cfg.data.task).distill(cfg, callbacks)
    # training = teacher-cache build + fit, less the final dev evaluation (and model save) inside fit
    t = callbacks.timers.spent
    cache, fit, ev = (t.get(k, (0.0, 0.0)) for k in ("teacher_cache", "fit", "eval"))
    return {
        "train_examples": summary["train_examples"],
        "train_s": cache[0] + fit[0] - ev[0],
        "train_cpu_s": cache[1] + fit[1] - ev[1],
        "cache_s": cache[0] if "teacher_cache" in t else None,
        "metric": summary["main_metric"],
        "dev": summary["dev"][summary["main_metric"]],
        "attention": summary["details"]["attention"],
    }


def run_trainer_baseline(args) -> dict:
    import torch
    import torch.nn.functional as F
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from alembert.classification.evaluate import evaluate_model
    from alembert.data.glue import get_task
    from alembert.data.readers import load_glue_split
    from alembert.data.tokenize import tokenize_dataset
    from alembert.losses.kd import kd_loss
    from alembert.models.load import load_classifier, load_tokenizer
    from alembert.models.student import parse_layers, student_from_teacher

    task = get_task(args.task)
    tokenizer = load_tokenizer(args.teacher)
    teacher = load_classifier(args.teacher, task).eval().requires_grad_(False)
    student = student_from_teacher(teacher, parse_layers(args.student_layers))
    raw = load_glue_split(task, args.data_dir, "train")
    if args.max_train_samples and args.max_train_samples < len(raw):
        raw = raw.select(range(args.max_train_samples))

    def encode(batch):
        pair = batch["text_b"] if "text_b" in batch else None
        enc = tokenizer(batch["text_a"], pair, truncation=True, max_length=args.max_length)
        enc["labels"] = batch["label"]
        return enc

    train = raw.map(encode, batched=True, remove_columns=raw.column_names)

    class KDTrainer(Trainer):
        """Runs the teacher on every batch, as KD examples and blog posts do."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            out = model(**inputs)
            with torch.no_grad(), self.accelerator.autocast():  # the teacher at the student's precision
                teacher_logits = teacher(**inputs).logits
            loss = 0.5 * kd_loss(out.logits, teacher_logits, 2.0) + 0.5 * F.cross_entropy(out.logits, labels)
            return (loss, out) if return_outputs else loss

    steps = math.ceil(math.ceil(len(train) / args.batch_size) * args.epochs)  # counted as alembert's loop does
    targs = TrainingArguments(
        output_dir=str(Path(args.output) / "variant-b"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        warmup_steps=int(0.1 * steps),  # 10% warm-up, rounded as alembert does
        max_grad_norm=1.0,
        seed=args.seed,
        data_seed=args.seed,
        train_sampling_strategy="random",
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        logging_steps=50,
        bf16=args.mixed_precision == "bf16",
    )
    trainer = KDTrainer(
        model=student,
        args=targs,
        train_dataset=train,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    from alembert.training.loop import Timers

    timers = Timers()  # the same wall + CPU clocks as alembert's variants
    with timers("train"):
        trainer.train()
    spent = timers.spent
    dev = tokenize_dataset(load_glue_split(task, args.data_dir, "dev"), tokenizer, args.max_length)
    metrics = evaluate_model(trainer.model, tokenizer, task, dev)
    return {
        "train_examples": len(train),
        "train_s": spent["train"][0],
        "train_cpu_s": spent["train"][1],
        "cache_s": None,
        "metric": task.main_metric,
        "dev": metrics[task.main_metric],
        "attention": teacher.config._attn_implementation,
    }


def child(args) -> None:
    start = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    result = (
        run_trainer_baseline(args) if args.variant == "b" else run_alembert(args, "kd" if args.variant == "a" else "ce")
    )
    samples = result["train_examples"] * args.epochs
    result["samples_per_s"] = samples / result["train_s"]
    if result["cache_s"]:  # what a second run with the same teacher and data would see
        result["samples_per_s_warm_cache"] = samples / (result["train_s"] - result["cache_s"])
    result["process_s"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result["torch_threads"] = torch.get_num_threads()
    Path(args.result).write_text(json.dumps(result, indent=2))


# ----------------------------------------------------------------------------- parent


def run_variant(args, variant: str, argv: list[str], cores: set[int] | None = None) -> dict:
    from alembert.models.packaged import cache_dir

    cache = Path(tempfile.mkdtemp(prefix=f"bench-cache-{variant}-"))
    models = cache_dir() / "models"  # unpacked alias models (e.g. mpnet-base) are not what is measured
    if models.is_dir():
        (cache / "models").symlink_to(models.resolve())
    result_file = cache / "result.json"
    env = {
        **os.environ,
        "ALEMBERT_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    pinned = f" (cores {sorted(cores)})" if cores else ""
    print(f"\n=== variant {variant}: {VARIANTS[variant]}{pinned} ===", flush=True)
    try:
        proc = subprocess.run(
            [sys.executable, __file__, *argv, "--variant", variant, "--result", str(result_file)],
            env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
        if proc.returncode != 0 or not result_file.is_file():
            return {"error": f"child exited with code {proc.returncode}"}
        return json.loads(result_file.read_text())
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def plan_queues(only: list[str], jobs: int) -> list[list[str]]:
    """Split the variants over ``jobs`` queues: b (the teacher every step: about twice a or c) gets
    a queue of its own, the others share the rest round-robin."""
    lanes = min(jobs, len(only))
    if lanes == 1:
        return [list(only)]
    first = [["b"]] if "b" in only else []
    rest = [v for v in only if v != "b"]
    lanes -= len(first)
    return first + [q for q in (rest[i::lanes] for i in range(lanes)) if q]


def run_all(args, only: list[str], argv: list[str]) -> dict:
    """Each variant in its own child; with --jobs N, N at a time on disjoint cores (a queue per core set)."""
    if args.jobs <= 1:
        return {v: run_variant(args, v, argv) for v in only}  # children get the same options
    cpus = sorted(os.sched_getaffinity(0))
    if args.jobs * args.threads > len(cpus):
        sys.exit(
            f"--jobs {args.jobs} x --threads {args.threads} needs {args.jobs * args.threads} CPUs, "
            f"this process has {len(cpus)}; lower --jobs or --threads"
        )
    from concurrent.futures import ThreadPoolExecutor

    queues = plan_queues(only, args.jobs)
    core_sets = [set(cpus[i * args.threads : (i + 1) * args.threads]) for i in range(args.jobs)]
    with ThreadPoolExecutor(len(queues)) as pool:
        done = pool.map(lambda q, c: {v: run_variant(args, v, argv, c) for v in q}, queues, core_sets)
        merged = {k: r for part in done for k, r in part.items()}
    return {v: merged[v] for v in only}


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(args, results: dict) -> tuple[str, dict]:
    ok = {v: r for v, r in results.items() if "error" not in r}
    metric = next((r["metric"] for r in ok.values()), "metric")
    lines = [
        "| variant | samples/s | train wall s | teacher cache s "
        f"| train CPU s | process s | peak RSS MB | dev {metric} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v, r in results.items():
        cells = (
            [f"failed: {r['error']}"] + [""] * 6
            if v not in ok
            else [
                fmt(r["samples_per_s"]),
                fmt(r["train_s"]),
                fmt(r["cache_s"]),
                fmt(r["train_cpu_s"]),
                fmt(r["process_s"]),
                fmt(r["peak_rss_mb"], 0),
                fmt(100 * r["dev"], 2),
            ]
        )
        lines.append(f"| {v}: {VARIANTS[v]} | " + " | ".join(cells) + " |")
    ratios = {}
    if "a" in ok and "b" in ok:
        ratios["a/b samples_per_s"] = ok["a"]["samples_per_s"] / ok["b"]["samples_per_s"]
        ratios["a-b dev points"] = 100 * (ok["a"]["dev"] - ok["b"]["dev"])
        lines += [
            "",
            f"- a/b samples/s: **{ratios['a/b samples_per_s']:.2f}x** (target >= 2x); "
            f"dev a - b: {ratios['a-b dev points']:+.2f} points (target: within 0.5)",
        ]
    if "a" in ok and "c" in ok:
        ratios["a/c train wall"] = ok["a"]["train_s"] / ok["c"]["train_s"]
        lines.append(f"- a/c train wall time: **{ratios['a/c train wall']:.2f}x** (target <= 1.2x)")
    if ok.get("a", {}).get("samples_per_s_warm_cache"):
        lines.append(
            f"- a with a warm teacher cache (train wall less the cache build): "
            f"{ok['a']['samples_per_s_warm_cache']:.1f} samples/s"
        )
    n = next((r["train_examples"] for r in ok.values()), "?")
    kernels = ", ".join(f"{v} {r['attention']}" for v, r in ok.items())
    side_by_side = (
        f" ({args.jobs} variants at a time, each pinned to its own core(s); they share memory bandwidth)"
        if args.jobs > 1
        else ""
    )
    lines += [
        "",
        f"{args.task}: {n} train examples x {args.epochs:g} epochs, batch {args.batch_size}, lr {args.lr:g}, seed "
        f"{args.seed}, precision {'fp32' if args.mixed_precision == 'no' else args.mixed_precision + ' autocast'}, "
        f"{args.threads} torch threads{side_by_side}, student = teacher layers {args.student_layers}, teacher "
        f"`{args.teacher}`, attention kernel: {kernels}. samples/s = examples x epochs / train wall. Train wall: the "
        "training loop (and alembert's cold teacher-cache build), without model loading, tokenisation or the final dev "
        "evaluation. Train CPU s: CPU time of the process over the same span (less sensitive to other load than wall "
        "time). Peak RSS: each variant's own process.",
    ]
    return "\n".join(lines), ratios


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.data_dir is None:
        from alembert.data.readers import default_data_dir

        args.data_dir = str(default_data_dir())
    if args.variant:
        return child(args)
    only = [v.strip() for v in args.only.split(",") if v.strip()]
    unknown = [v for v in only if v not in VARIANTS]
    if unknown:
        sys.exit(f"--only: unknown variant(s) {', '.join(unknown)}; choose from a, b, c")
    results = run_all(args, only, argv)
    table, ratios = report(args, results)
    print("\n" + table)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("variant", "result")}
    versions = {m: metadata.version(m) for m in ("torch", "transformers", "accelerate", "alembert")}
    versions.update(python=platform.python_version(), cpus=os.cpu_count())
    report_json = {"config": config, "versions": versions, "results": results, "ratios": ratios}
    (out / "bench_throughput.json").write_text(json.dumps(report_json, indent=2))
    (out / "bench_throughput.md").write_text(f"# Distillation throughput\n\n{table}\n")
    print(f"\nwrote {out / 'bench_throughput.json'} and {out / 'bench_throughput.md'}")
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
