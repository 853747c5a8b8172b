"""``alembert plot RUN_DIR``: PNGs of each loss term and dev metric over steps, from the
run's ``log.jsonl``, into ``RUN_DIR/plots/``."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("plot", help="draw a training run's loss terms and dev metrics")
    p.add_argument("run_dir", type=Path, help="training run folder (holds log.jsonl)")
    p.add_argument("--output", type=Path, help="folder for the PNGs (default RUN_DIR/plots)")
    p.set_defaults(run=run)


def run(args) -> int:
    from alembert.files import check_output_folder
    from alembert.plots.curves import plot_run

    if args.output is not None:
        check_output_folder(args.output)
    written = plot_run(args.run_dir, args.output)
    print(f"wrote {len(written)} plots to {written[0].parent}: {', '.join(p.name for p in written)}")
    return 0
