#!/usr/bin/env python
"""Embedding distillation: alembert vs sentence-transformers' own trainer, side by side.

Both variants train the same student (one folder, written once by alembert: e.g. layers
0,2,4 of all-MiniLM-L6-v2 plus a Dense layer to the teacher's width, L2-normalised) from
the same teacher embeddings of the same texts, with the same objective (MSE between
student and teacher embeddings: sentence-transformers' ``MSELoss``, alembert's
``embed-mse``), epochs, batch size, learning rate (AdamW, 10% warm-up, weight decay 0.01),
seed, threads and precision (``--mixed-precision bf16``: alembert's autocast, the trainer's
``bf16=True``; the teacher cache is then built under the same autocast):

  a  alembert ``distill-general --recipe embed-mse`` (length-grouped batches, dynamic padding)
  b  ``SentenceTransformerTrainer`` + ``losses.MSELoss``, as its documentation's distillation
     example does it (teacher embeddings as the ``label`` column, default batch sampler)
  c  the same trainer + ``EmbedDistillLoss`` (its current distillation loss: cosine distance, and
     the learnable projection it offers for a student narrower than the teacher), on the same
     student without its Dense layer: the projection lives on the loss and is not saved, so the
     student keeps its own width (symmetric search only). Runs after a and b, alone on its core.

The teacher embeddings are computed once by the parent (alembert's embedding cache; timed and
reported, not part of either variant), so the comparison is the student training itself.
Each variant runs in its own process (``--jobs 2``: side by side, each pinned to its own core);
both are scored by the same code afterwards: STS-B dev Spearman and SQuAD retrieval MRR@10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

VARIANTS = {
    "a": "alembert embed-mse",
    "b": "sentence-transformers trainer + MSELoss",
    "c": "sentence-transformers trainer + EmbedDistillLoss (cosine, learnable projection)",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="mpnet-base")
    p.add_argument("--student", default="minilm-l6")
    p.add_argument("--student-layers", default="0,2,4")
    p.add_argument("--corpus", nargs="+", default=["squad"])
    p.add_argument("--transfer-task", default="stsb")
    p.add_argument("--max-texts", type=int, default=None)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--projection-init",
        choices=["random", "procrustes"],
        default="random",
        help="the shared student's new Dense layer: random, or fitted once (alembert's procrustes start) and "
        "then the same starting point for both variants",
    )
    p.add_argument("--mixed-precision", choices=["no", "bf16"], default="no", help="the same for both variants")
    p.add_argument("--jobs", type=int, default=2, help="variants side by side, each pinned to its own --threads cores")
    p.add_argument("--output", default="runs/bench-embed-peer")
    p.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def texts_of(args) -> list[str]:
    from alembert.embedding.data import load_texts

    return load_texts(args.corpus, [t for t in args.transfer_task.split(",") if t], None, None, args.max_texts)


def prepare(args, out: Path) -> dict:
    """The shared student initialisation and the teacher embeddings (warm cache for both)."""
    import torch

    from alembert.config.schema import DistillGeneralConfig
    from alembert.embedding.cache import build_embedding_cache
    from alembert.embedding.student import fit_projection_on, make_embedding_student
    from alembert.models.sentence import load_embedding_model
    from alembert.training.setup import AUTOCAST

    torch.set_num_threads(args.threads * args.jobs)
    teacher, teacher_tok = load_embedding_model(args.teacher)
    cfg = DistillGeneralConfig(
        teacher=args.teacher,
        student={"path": args.student, "layers": [int(x) for x in args.student_layers.split(",")]},
        train={"seed": args.seed},
    )
    student, student_tok, desc = make_embedding_student(cfg, teacher, teacher_tok, None, uses_vectors=True)
    start = time.perf_counter()
    autocast = AUTOCAST.get(args.mixed_precision)
    texts = texts_of(args)
    cache = build_embedding_cache(teacher, teacher_tok, texts, args.max_length, 128, autocast=autocast)
    prepared = {"student": desc, "teacher_cache_s": time.perf_counter() - start, "cache": str(cache.folder)}
    if args.projection_init != "random":
        if not student.fresh_dense:
            raise SystemExit(f"--projection-init {args.projection_init}: the student has no new Dense layer to fit")
        prepared["projection"] = fit_projection_on(
            student, student_tok, texts, cache.emb, args.max_length, 128, args.projection_init
        )
        prepared["student"] += f", Dense from {args.projection_init}"
    student.save(out / "init", student_tok)
    return prepared


def run_alembert(args, out: Path) -> dict:
    from alembert.cli.distill_general import run_general
    from alembert.config.schema import DistillGeneralConfig

    cfg = DistillGeneralConfig.model_validate(
        {
            "teacher": args.teacher,
            "recipe": "embed-mse",
            "student": {"path": str(out / "init")},
            "output_dir": str(out / "a"),
            "overwrite": True,
            "eval_tasks": ["stsb-zeroshot"],
            "data": {
                "corpus": args.corpus,
                "transfer_tasks": [t for t in args.transfer_task.split(",") if t],
                "max_texts": args.max_texts,
                "max_length": args.max_length,
            },
            "train": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "seed": args.seed,
                "threads": args.threads,
                "mixed_precision": args.mixed_precision,
                "eval_every": 10**9,
                "warmup_ratio": 0.1,
                "weight_decay": 0.01,
            },
        }
    )
    s = run_general(cfg)
    return {
        "texts": s["train_examples"],
        "train_s": s["train_seconds"] - s["details"]["eval_seconds"],
        "model": str(out / "a"),
    }


def run_sentence_transformers(args, out: Path, variant: str = "b") -> dict:
    import datasets
    import numpy as np
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    from alembert.embedding.cache import EmbeddingCache

    texts = texts_of(args)
    emb = np.asarray(EmbeddingCache(Path(json.loads((out / "prepared.json").read_text())["cache"])).emb)
    model = SentenceTransformer(str(out / "init"), device="cpu")
    if variant == "c":  # the student at its own width: EmbedDistillLoss projects it to the teacher's
        from sentence_transformers.sentence_transformer.modules import Dense

        model = SentenceTransformer(modules=[m for m in model if not isinstance(m, Dense)], device="cpu")
        loss = losses.EmbedDistillLoss(model, projection_dim=emb.shape[1])
    else:
        loss = losses.MSELoss(model)
    model.max_seq_length = args.max_length
    train = datasets.Dataset.from_dict({"sentence": texts, "label": emb.tolist()})
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(out / f"{variant}-trainer"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_ratio=0.1,
        weight_decay=0.01,
        seed=args.seed,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=50,
        report_to="none",
        use_cpu=True,
        bf16=args.mixed_precision == "bf16",
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=train, loss=loss)
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    model.save(str(out / variant))
    return {"texts": len(texts), "train_s": train_s, "model": str(out / variant)}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.output)
    result = run_alembert(args, out) if args.variant == "a" else run_sentence_transformers(args, out, args.variant)
    result["samples_per_s"] = result["texts"] * args.epochs / result["train_s"]
    (out / f"result-{args.variant}.json").write_text(json.dumps(result, indent=2))


def run_variant(argv: list[str], variant: str, cores: set[int] | None) -> None:
    subprocess.run(
        [sys.executable, __file__, *argv, "--variant", variant],
        check=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
    )


def score(args, folder: str) -> dict:
    from alembert.embedding.evaluate import evaluate_embedding
    from alembert.models.sentence import load_embedding_model

    model, tok = load_embedding_model(folder)
    return {
        task: evaluate_embedding(model, tok, task, args.max_length, 128)
        for task in ("stsb-zeroshot", "squad-retrieval")
    }


def cpu_description() -> str:
    flags, name = set(), platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX2'}), {os.cpu_count()} CPUs"


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.variant:
        return child(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(args, out)
    (out / "prepared.json").write_text(json.dumps(prepared, indent=2))
    cpus = sorted(os.sched_getaffinity(0))
    if args.jobs > 1 and args.jobs * args.threads <= len(cpus):
        cores = [set(cpus[i * args.threads : (i + 1) * args.threads]) for i in range(2)]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda v, c: run_variant(argv, v, c), ["b", "a"], cores[::-1]))
        run_variant(argv, "c", cores[0])
    else:
        for v in VARIANTS:
            run_variant(argv, v, None)
    results = {v: json.loads((out / f"result-{v}.json").read_text()) for v in VARIANTS}
    for r in results.values():
        r["dev"] = score(args, r["model"])
    lines = [
        "| variant | samples/s | train wall s | STS-B spearman | recall@1 | MRR@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v, r in results.items():
        d = r["dev"]
        lines.append(
            f"| {v}: {VARIANTS[v]} | {r['samples_per_s']:.1f} | {r['train_s']:.0f} | "
            f"{d['stsb-zeroshot']['spearman']:.4f} | {d['squad-retrieval']['recall@1']:.3f} | "
            f"{d['squad-retrieval']['mrr@10']:.3f} |"
        )
    a, b, c = results["a"], results["b"], results["c"]
    ratio = a["samples_per_s"] / b["samples_per_s"]
    lines += [
        "",
        f"- a/b samples/s: **{ratio:.2f}x** (target >= 2x); STS-B a - b: "
        f"{a['dev']['stsb-zeroshot']['spearman'] - b['dev']['stsb-zeroshot']['spearman']:+.4f} (target >= 0)",
        f"- a - c (EmbedDistillLoss): STS-B "
        f"{a['dev']['stsb-zeroshot']['spearman'] - c['dev']['stsb-zeroshot']['spearman']:+.4f}, "
        f"MRR@10 {a['dev']['squad-retrieval']['mrr@10'] - c['dev']['squad-retrieval']['mrr@10']:+.3f} "
        "(c trained alone on its core: its samples/s is not side by side)",
        "",
        f"{a['texts']} texts x {args.epochs:g} epochs, batch {args.batch_size}, lr {args.lr:g}, max length "
        f"{args.max_length}, seed {args.seed}, precision {args.mixed_precision}, {args.threads} thread(s) "
        f"each{', side by side on separate cores' if args.jobs > 1 else ''}; student {prepared['student']}; teacher "
        f"`{args.teacher}` embeddings computed once in {prepared['teacher_cache_s']:.0f} s (not part of either "
        f"variant); CPU: {cpu_description()}; torch {metadata.version('torch')}, transformers "
        f"{metadata.version('transformers')}, sentence-transformers {metadata.version('sentence-transformers')}.",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    (out / "embed_peer.md").write_text(f"# Embedding distillation: alembert vs sentence-transformers\n\n{table}\n")
    (out / "embed_peer.json").write_text(
        json.dumps({"config": vars(args), "prepared": prepared, "results": results, "ratio": ratio}, indent=2)
    )


if __name__ == "__main__":
    main()
