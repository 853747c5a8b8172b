"""``frontier.png``: quality against batch-32 throughput (log axis), the Pareto line through the models
no other beats on both, the teacher and the chosen model marked, the peers in grey."""

from __future__ import annotations

from pathlib import Path

from alembert.plots.backend import pyplot, save_png


def frontier_chart(
    rows: list[dict],
    front: list[str],
    path: str | Path,
    *,
    metric: str,
    title: str,
    teacher: str,
    best: str | None = None,
    peers: tuple[str, ...] = (),
) -> Path:
    """Write the chart of ``rows`` (the bench's: ``name``, ``dev_metric``, ``throughput_seq_s``) to ``path``;
    ``front``: the Pareto names; ``teacher``, ``best``, ``peers``: names marked apart."""
    plt = pyplot()  # first: matplotlib set up for files (its cache in alembert's), then its parts
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        name = r["name"]
        style = (
            {"marker": "*", "s": 220, "color": "black"}
            if name == teacher
            else {"marker": "D", "s": 90, "color": "tab:red"}
            if name == best
            else {"marker": "s", "s": 50, "color": "grey"}
            if name in peers
            else {"marker": "o", "s": 50, "color": "tab:blue" if name in front else "tab:cyan"}
        )
        ax.scatter(r["throughput_seq_s"], r["dev_metric"], zorder=3, **style)
        ax.annotate(
            name, (r["throughput_seq_s"], r["dev_metric"]), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
    line = sorted((r for r in rows if r["name"] in front), key=lambda r: r["throughput_seq_s"])
    if len(line) > 1:
        ax.step(
            [r["throughput_seq_s"] for r in line],
            [r["dev_metric"] for r in line],
            where="post",
            color="tab:blue",
            alpha=0.5,
            label="Pareto frontier",
        )
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))  # 20, 50, 100, not 2 x 10^1
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sequences/s at batch 32 (log scale)")
    ax.set_ylabel(f"dev {metric}")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return save_png(fig, path)
