"""``alembert bench MODEL... --task K``: size, dev metric and speed of a teacher and its
students (PyTorch folders or ONNX exports) in one fair run; the first model is the reference."""

import os
import sys
from pathlib import Path

from alembert.cli.common import print_table


def register(sub) -> None:
    p = sub.add_parser("bench", help="size, dev metric and speed of several models, vs the first one")
    p.add_argument(
        "models", nargs="+", metavar="MODEL", help="model folders or ONNX exports; the first is the reference"
    )
    p.add_argument(
        "--task",
        help="task whose dev set is scored: a GLUE task (sst2, mrpc, ...), squad, stsb-zeroshot / "
        "squad-retrieval (embedding models), or custom (your own --dev-file; the default when one is given)",
    )
    p.add_argument(
        "--dev-file",
        type=Path,
        help="your own dev set (.csv, .tsv, .jsonl), scored with the reference model's saved labels",
    )
    p.add_argument(
        "--train-file",
        type=Path,
        help="your own training file: only to infer the labels when the models have none saved",
    )
    p.add_argument("--text-column", help="column holding the text (default: text/sentence/sentence1)")
    p.add_argument("--text-pair-column", help="column holding the second text of a pair")
    p.add_argument("--label-column", help="column holding the label (default: label)")
    p.add_argument(
        "--labels",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        help="class names in id order (default: the reference model's)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=Path("runs/bench"),
        help="folder for bench.json, bench.md, plots (default runs/bench)",
    )
    p.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime alike (default: torch's)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timing repeats (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up calls per model (default 2)")
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="device of the PyTorch models (ONNX runs on CPU)"
    )
    p.add_argument("--max-eval-samples", type=int, help="score only the first N dev examples")
    p.add_argument(
        "--no-serving",
        action="store_true",
        help="skip the serving bench (real dev texts at their own lengths: "
        "arrival-order batch 1 and 32, length-sorted 32)",
    )
    p.add_argument("--data-dir", type=Path, help="GLUE folder (default: $ALEMBERT_DATA or ../shared/data/glue_data)")
    p.add_argument(
        "--documents-by",
        metavar="MODEL",
        help="with --task squad-retrieval: asymmetric search, every model's questions against the paragraphs "
        "MODEL (the teacher) embeds once; the timing is of the query side only",
    )
    p.set_defaults(run=run)


def execute(args) -> dict:
    """The result of the benchmark ``args`` asks for (``run_bench``'s): the CLI's and the Python API's one path."""
    if "torch" not in sys.modules:  # read once, when torch loads OpenMP
        # idle torch threads then yield the CPU, as onnxruntime's do (allow_spinning=0); with
        # spinning, a 2-thread torch run beside other work measured 30x slower at batch 1 here
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from alembert.errors import AlembertError
    from alembert.measure.run import run_bench
    from alembert.tasks import task_kind

    for name, value in (
        ("--threads", args.threads),
        ("--repeats", args.repeats),
        ("--max-eval-samples", args.max_eval_samples),
    ):
        if value is not None and value < 1:
            raise AlembertError(f"{name} must be at least 1, got {value}")
    if args.warmup < 0:
        raise AlembertError(f"--warmup must be 0 or more, got {args.warmup}")
    if args.task is None and args.dev_file is None:
        raise AlembertError("bench: pass --task (sst2, mrpc, ..., squad) or your own --dev-file")
    if args.output is not None:
        from alembert.files import check_output_folder

        check_output_folder(args.output)
    kind = task_kind(args.task)
    if args.documents_by and "documents_by" not in kind.evaluate_flags:
        raise AlembertError(f"--documents-by is for --task squad-retrieval (asymmetric search), not {args.task}")
    data = {
        k: getattr(args, k)
        for k in ("dev_file", "train_file", "text_column", "text_pair_column", "label_column", "labels", "documents_by")
    }
    return run_bench(
        args.models,
        args.task,
        args.output,
        threads=args.threads,
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
        max_eval_samples=args.max_eval_samples,
        data_dir=args.data_dir,
        data={k: v for k, v in data.items() if v is not None},
        serving=not args.no_serving,
        kind=kind,
    )


def run(args) -> int:
    from alembert.measure.report import conditions, summary, table_rows, terminal_rows, terminal_title

    result = execute(args)
    if sys.stdout.isatty():
        print_table(terminal_title(result), table_rows(result), terminal_rows(result))
    else:  # a log or a pipe: the 80-column summary (every column is in bench.md and bench.json)
        print(summary(result))
    print(conditions(result))
    print(f"wrote {', '.join(result['files'].values())}")
    return 0
