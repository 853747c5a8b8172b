"""``alembert export MODEL --onnx [--quantize int8] --output DIR``: an ONNX folder that
``alembert evaluate``, ``bench`` and ``predict`` run through its runtime (alembert/runtimes/onnxruntime.py).
``--web`` instead writes a folder a browser runs as it is (fp32 + int8 graphs, transformers.js layout, demo page; see
alembert/export/web.py), served by ``alembert serve-web DIR``."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("export", help="export a fine-tuned model to ONNX (optionally int8)")
    p.add_argument(
        "model",
        help="fine-tuned model folder, or a sentence-transformers folder / alias, or a static (model2vec) folder "
        "(one embedding graph)",
    )
    p.add_argument(
        "--onnx",
        action="store_true",
        help="export to ONNX (this, --openvino, --web or --quantize auto is required)",
    )
    p.add_argument(
        "--openvino",
        action="store_true",
        help="export to OpenVINO IR (the ONNX export's graph; --quantize int8: NNCF post-training quantisation "
        "calibrated on training texts; bf16: computed in bf16 where the CPU has AVX512-BF16 or AMX); needs the "
        "openvino extra",
    )
    p.add_argument(
        "--web",
        action="store_true",
        help="a folder for web browsers: fp32 + int8 ONNX in the transformers.js layout, a demo page, vendored JS",
    )
    p.add_argument(
        "--node-modules",
        type=Path,
        help="with --web: the npm packages to vendor (default: .cache/web-node/node_modules)",
    )
    p.add_argument(
        "--quantize",
        nargs="?",
        const="auto",
        choices=["auto", "int8", "bf16", "none"],
        help="auto (the default when no value is given): build fp32, dynamic int8 and static (calibrated) int8 graphs "
        "for ONNX Runtime and fp32/int8/bf16 IRs for OpenVINO (with the extra; --onnx or --openvino: that runtime's "
        "only), time them on this CPU and score them on the dev set, keep the fastest within 1 point of the PyTorch "
        "model; "
        "int8: onnxruntime dynamic quantisation, unmeasured (with --openvino: NNCF static int8); bf16: --openvino "
        "only; none: fp32",
    )
    p.add_argument(
        "--batch-invariant",
        action="store_true",
        help="with --quantize auto: only variants whose outputs do not depend on the batch (fixed int8 scales, "
        "fp32); without it such a variant is still preferred when it costs < 10%% of the fastest's throughput",
    )
    p.add_argument(
        "--task",
        help="with --quantize auto: the task whose dev set scores the variants (default: the one saved with the model)",
    )
    p.add_argument("--data-dir", help="with --quantize auto: GLUE folder (default: $ALEMBERT_DATA)")
    p.add_argument(
        "--dev-file", help="with --quantize auto: your own dev file (.csv/.tsv/.jsonl) instead of a GLUE task"
    )
    p.add_argument(
        "--train-file",
        help="with --quantize auto, or --openvino --quantize int8: training texts to calibrate static int8 with "
        "(default: the task's; an embedding model's: STS-B's training sentences)",
    )
    p.add_argument("--text-column", help="with --train-file for an embedding model: the column holding the text")
    p.add_argument("--max-eval-samples", type=int, help="with --quantize auto: score on the first N dev examples")
    p.add_argument("--output", type=Path, required=True, help="folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads for the export and, with --quantize auto, for timing its variants: time them on as many "
        "threads as the model will serve on (default: torch's)",
    )
    p.add_argument("--opset", type=int, help="ONNX opset (default: 23 for SDPA models, the exporter's otherwise)")
    p.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="push the exported folder to this Hub repository afterwards (checked first)",
    )
    p.add_argument(
        "--full-last-layer",
        action="store_true",
        help="compute the last layer for every token (default for BERT: the [CLS] token only, same logits)",
    )
    p.set_defaults(run=run)


def execute(args) -> tuple[Path, dict]:
    """(the folder written, its export info; for --web the download sizes in MB) of the export
    ``args`` asks for: the CLI's and the Python API's one path."""
    from alembert.errors import AlembertError
    from alembert.machine import torch_threads
    from alembert.training.hub import check_push_target

    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise AlembertError(f"--threads must be at least 1, got {threads}")
    push_to = getattr(args, "push_to_hub", None)
    if push_to:  # before any export work: a push that can only fail fails now
        check_push_target(push_to)
    with torch_threads(threads):  # the variants are timed, and the card says, on this many threads
        out, info = _export(args)
    if push_to:
        from alembert.training.hub import push_folder

        info = {**info, "pushed_to": push_folder(out, push_to, f"alembert export of {args.model}")}
    return out, info


def _export(args) -> tuple[Path, dict]:
    import json

    from alembert.errors import AlembertError
    from alembert.export import auto
    from alembert.export.onnx import export_onnx
    from alembert.export.staging import EXPORT_INFO
    from alembert.machine import cpu_facts

    if args.web:
        from alembert.export.web import download_bytes, export_web

        out = export_web(
            args.model,
            args.output,
            overwrite=args.overwrite,
            node_modules=args.node_modules,
            first_token=not args.full_last_layer,
            opset=args.opset,
        )
        return out, {"download_mb": {d: sum(download_bytes(out, d).values()) / 1e6 for d in ("q8", "fp32")}}
    quantize = None if args.quantize == "none" else args.quantize
    openvino = getattr(args, "openvino", False)
    if getattr(args, "batch_invariant", False) and quantize != "auto":
        raise AlembertError("--batch-invariant chooses among --quantize auto's variants; pass --quantize auto")
    if args.onnx and openvino:
        raise AlembertError("pass one of --onnx and --openvino: each export is one folder")
    if openvino and quantize != "auto":
        return _export_openvino(args, quantize)
    if not args.onnx and quantize != "auto" and not openvino:
        raise AlembertError(
            "pass --onnx (an ONNX folder), --openvino (an OpenVINO folder), --web (a folder for web browsers) "
            "or --quantize auto (the fastest variant of either runtime on this CPU)"
        )
    if quantize == "bf16":
        raise AlembertError("--quantize bf16 is for --openvino exports; drop it or pass --openvino")
    data = {
        "task": args.task,
        "data_dir": args.data_dir,
        "dev_file": args.dev_file,
        "train_file": args.train_file,
        "text_column": args.text_column,
        "max_eval_samples": args.max_eval_samples,
    }
    if quantize != "auto" and any(v is not None for v in data.values()):
        raise AlembertError(
            "--task/--data-dir/--dev-file/--train-file/--text-column/--max-eval-samples choose what --quantize auto "
            "measures on; pass --quantize auto, or drop them"
        )
    out = export_onnx(
        args.model,
        args.output,
        quantize=quantize,
        opset=args.opset,
        overwrite=args.overwrite,
        first_token=not args.full_last_layer,
        data=data,
        candidates=auto.candidates_for("onnx" if args.onnx else "openvino" if openvino else None, cpu_facts())
        if quantize == "auto"
        else None,
        batch_invariant=getattr(args, "batch_invariant", False),
    )
    info = json.loads((out / EXPORT_INFO).read_text())
    return out, info


def _export_openvino(args, quantize) -> tuple[Path, dict]:
    import json

    from alembert.errors import AlembertError
    from alembert.export.openvino import export_openvino
    from alembert.export.staging import EXPORT_INFO

    data = {k: getattr(args, k) for k in ("task", "data_dir", "train_file", "text_column")}
    given = [k for k in ("dev_file", "max_eval_samples") if getattr(args, k) is not None]
    if given or (quantize != "int8" and any(v is not None for v in data.values())):
        flags = ", ".join("--" + k.replace("_", "-") for k in given) or "--task/--data-dir/--train-file/--text-column"
        raise AlembertError(f"{flags}: with --openvino only --quantize int8 reads data (its calibration texts)")
    out = export_openvino(
        args.model,
        args.output,
        quantize=quantize,
        overwrite=args.overwrite,
        first_token=not args.full_last_layer,
        opset=args.opset,
        data=data,
    )
    return out, json.loads((out / EXPORT_INFO).read_text())


def run(args) -> int:
    out, info = execute(args)
    if args.web:
        sizes = info["download_mb"]
        print(
            f"exported {args.model} -> {out}/ (web: onnx/model_quantized.onnx int8, onnx/model.onnx fp32, index.html); "
            f"a visitor downloads {sizes['q8']:.1f} MB (int8) or {sizes['fp32']:.1f} MB (fp32); serve it: alembert "
            f"serve-web {out}"
        )
        return 0
    print(summary_line(args.model, out, info))
    if info.get("auto"):
        print(f"quantize auto: {info['auto']['reason']}")
    if info.get("pushed_to"):
        print(f"pushed to {info['pushed_to']}")
    return 0


def summary_line(model, out: Path, info: dict) -> str:
    """One line for any export folder, read through the runtime that runs it: its weight files, the
    variant and how it computes, and the check against PyTorch from its record."""
    from alembert.runtimes import runtime_for

    runtime = runtime_for(out)
    files = runtime.weight_files(out)
    how = [info.get("variant") or info.get("quantization") or "fp32"]
    how += [f"computed in {info['precision']}"] if info.get("precision") else []
    how += [f"opset {info['opset']}"] if info.get("opset") else []
    how.append(f"{sum(f.stat().st_size for f in files) / 1e6:.1f} MB")
    how.append(
        f"static: a {info['vocab_size']} x {info['dim']} token table, no layers"
        if info.get("static")
        else f"last layer: {info.get('last_layer', 'all tokens')}"
    )
    check = (
        # a sentence-embedding model: one graph, pooling and head inside
        f"sentence embeddings ({info['pooling']} pooling, dim {info['dim']}, normalize {info['normalize']}): "
        f"max |diff| vs PyTorch {info['max_abs_diff_vs_torch']:.2e}, min cosine {info['min_cosine_vs_torch']:.6f}"
        if info.get("kind") == "embedding"
        else f"max |logit diff| vs PyTorch {info['max_abs_diff_vs_torch']:.2e}, "
        f"argmax agreement {info['argmax_agreement']:.0%}"
    )
    shown = runtime.weights[0] if runtime.weights else ""  # the file a user opens: model.onnx, openvino_model.xml
    return f"exported {model} -> {out}/{shown} ({runtime.title}, {', '.join(how)}); {check}"
