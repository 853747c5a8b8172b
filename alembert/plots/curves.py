"""Training curves from a run's ``log.jsonl``: one PNG per loss term and per dev metric.

Training records are ``{"time", "step", "epoch", "lr", "samples_per_s", "loss", <term>: value}``,
eval records ``{"time", "step", "epoch", "eval": {metric: value}}`` (see ``training/logger.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from alembert.errors import AlembertError
from alembert.plots.backend import pyplot, save_png

NOT_LOSSES = {"time", "step", "epoch", "lr", "samples_per_s", "eval"}


def read_log(run_dir: str | Path) -> tuple[dict[str, list], dict[str, list]]:
    """``({term: [(step, value)]}, {metric: [(step, value)]})`` from ``run_dir/log.jsonl``.
    A torn last line (a killed run) is ignored."""
    path = Path(run_dir) / "log.jsonl"
    if not Path(run_dir).is_dir():
        raise AlembertError(f"run folder {run_dir} not found; pass the --output folder of a training run")
    if not path.is_file():
        raise AlembertError(
            f"{path} not found; pass the --output folder of a training run (finetune/distill write log.jsonl)"
        )
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    losses: dict[str, list] = {}
    evals: dict[str, list] = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise AlembertError(f"{path} line {number} is not JSON; fix or delete that line") from None
        step = record.get("step") if isinstance(record, dict) else None
        if not isinstance(step, int | float):
            continue
        for key, value in record.items():
            if key not in NOT_LOSSES and isinstance(value, int | float):
                losses.setdefault(key, []).append((step, value))
        for key, value in (record.get("eval") or {}).items():
            if isinstance(value, int | float):
                evals.setdefault(key, []).append((step, value))
    if not losses and not evals:
        raise AlembertError(f"{path} holds no loss or eval records; let the run log at least one step (--log-every)")
    return losses, evals


def _plot(points: list, title: str, ylabel: str, path: Path, marker: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps, values = zip(*points, strict=True)
    ax.plot(steps, values, marker=marker, markersize=3)
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``<term>.png`` per loss term and ``eval_<metric>.png`` per dev metric into
    ``out_dir`` (default ``run_dir/plots``); returns the files written."""
    losses, evals = read_log(run_dir)
    out = Path(out_dir) if out_dir else Path(run_dir) / "plots"
    name = Path(run_dir).resolve().name
    written = [_plot(pts, f"{name}: {term}", term, out / f"{_safe(term)}.png", ".") for term, pts in losses.items()]
    written += [
        _plot(pts, f"{name}: dev {metric}", metric, out / f"eval_{_safe(metric)}.png", "o")
        for metric, pts in evals.items()
    ]
    return written
