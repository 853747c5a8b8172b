"""Bench outputs: ``bench.json`` (everything), ``bench.md`` (the table) and two PNG plots,
dev metric vs latency (with the Pareto front) and dev metric vs size on disk."""

from __future__ import annotations

from pathlib import Path

from alembert.files import write_json_atomic, write_text_atomic
from alembert.plots.backend import pyplot, save_png
from alembert.runtimes.base import short_kind


def _num(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _x(value) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _short_metric(metric: str) -> str:
    return {"accuracy": "acc", "pearson": "r", "spearman": "rho", "matthews": "mcc"}.get(metric, metric[:6])


def table_rows(result: dict) -> list[dict[str, str]]:
    """One row of formatted cells per model, the reference first: every column (bench.md)."""
    metric = result["metric"]
    seq = result["seq_len"]
    rows = []
    for m in result["models"]:
        row = {
            "model": m["name"],
            "kind": m["kind"],
            "params (M)": _num(m["params"] / 1e6, ".1f"),
            "w/o emb. (M)": _num(m["params_no_embeddings"] / 1e6, ".1f"),
            "disk MB": _num(m["disk_mb"], ".1f"),
            f"dev {metric}": _num(m["dev_metric"], ".4f"),
            "retention %": _num(m["retention_pct"], ".1f"),
            f"ms @1x{seq} p50/p90": f"{m['latency_ms_median']:.1f} / {m['latency_ms_p90']:.1f}",
            f"seq/s @{result['batch_size']}x{seq}": _num(m["throughput_seq_s"], ".1f"),
            "speed-up thr.": _x(m["speedup_throughput"]),
            "speed-up lat.": _x(m["speedup_latency"]),
        }
        if "serving" in m:
            b1 = m["serving"]["arrival_b1"]
            row |= {
                "real b1 ms p50/p90/p99": f"{b1['ms_p50']:.1f} / {b1['ms_p90']:.1f} / {b1['ms_p99']:.1f}",
                "real b1 sent/s": _num(b1["sentences_s"], ".0f"),
                "real b32 arrival sent/s": _num(m["arrival32_sent_s"], ".0f"),
                "real b32 sorted sent/s": _num(m["sorted32_sent_s"], ".0f"),
                "speed-up sorted": _x(m["speedup_sorted32"]),
            }
        rows.append(row)
    return rows


def terminal_rows(result: dict) -> list[dict[str, str]]:
    """The few columns that fit an 80-column terminal (the rest are in bench.md / bench.json):
    name, kind (torch, or the ONNX export's int8/fp32), dev metric, retention, fixed-length batch-1 latency
    and batch throughput (the shapes are in :func:`terminal_title`); with the serving bench, real-length
    batch-1 p50 in arrival order and length-sorted batch throughput."""
    rows = []
    for m in result["models"]:
        row = {
            "model": m["name"],
            "kind": short_kind(m["kind"]),
            _short_metric(result["metric"]): _num(m["dev_metric"], ".4f"),
            "ret %": _num(m["retention_pct"], ".1f"),
            "ms @1": _num(m["latency_ms_median"], ".1f"),
            "seq/s": _num(m["throughput_seq_s"], ".0f"),
            "x": _x(m["speedup_throughput"]).replace(".00x", "x")
            if m["speedup_throughput"] == 1
            else _x(m["speedup_throughput"]),
        }
        if "serving" in m:
            row |= {"real ms": _num(m["arrival1_ms_p50"], ".1f"), "real s/s": _num(m["sorted32_sent_s"], ".0f")}
        rows.append(row)
    return rows


def summary(result: dict, width: int = 80) -> str:
    """The bench in at most ``width`` columns, for the last screen of a run (``make demo``) and a
    log file: per model its kind, dev metric, retention, speed-up at batch 32 and 1 against the
    reference, and size on disk; then where the full tables and charts are."""
    metric = _short_metric(result["metric"])
    head = f"{'model':<26} {'kind':<7} {metric:>8} {'ret %':>6} {'x b32':>6} {'x b1':>6} {'MB':>7}"
    lines = [
        f"{result['task']} dev {result['metric']}; speed-ups against {result['reference']}, on this CPU",
        head,
    ]
    for m in result["models"]:
        name = m["name"] if len(m["name"]) <= 26 else "…" + m["name"][-25:]
        kind = short_kind(m["kind"])
        lines.append(
            f"{name:<26} {kind[:7]:<7} {_num(m['dev_metric'], '.4f'):>8} {_num(m['retention_pct'], '.1f'):>6} "
            f"{_x(m['speedup_throughput']):>6} {_x(m['speedup_latency']):>6} {_num(m['disk_mb'], '.1f'):>7}"
        )
    return "\n".join(line[:width] for line in lines)


def terminal_title(result: dict) -> str:
    """The terminal table's title: the shapes its short column names stand for."""
    seq, batch = result["seq_len"], result["batch_size"]
    real = (
        f"; real: dev texts at their own length, ms @1 p50 in arrival order, s/s sorted @{batch}"
        if result.get("serving")
        else ""
    )
    shapes = f"ms @1x{seq}, seq/s @{batch}x{seq} (int8/fp32: ONNX, ov-: OpenVINO)"
    return f"bench: {result['task']} vs {result['reference']}; {shapes}{real}"


def conditions(result: dict) -> str:
    """How the numbers were taken (and whether other work loaded the CPU), and on what CPU."""
    from alembert.machine import busy, cpu_line

    machine = result.get("machine", {})
    load = max(machine.get("loadavg_1min_before", 0), machine.get("loadavg_1min_after", 0))
    state = busy(load, machine.get("cpu_count"))
    busy_note = f"; NOTE: the machine was {state}: timings are noisy" if state else ""
    timing = (
        f"{result['timing']}, max length {result['seq_len']}, batch {result['batch_size']}"
        if result.get("timing")
        else f"latency at batch 1 x {result['seq_len']} tokens, throughput at batch {result['batch_size']} x "
        f"{result['seq_len']} tokens (real dev texts padded/truncated to {result['seq_len']} tokens, "
        "the same for every model)"
    )
    serving = result.get("serving")
    if serving:
        timing += (
            f"; serving ('real' columns): the first {serving['sentences']} dev texts at their own lengths (truncated "
            f"at {serving['max_length']}): batch 1 in arrival order (first {serving['singles']}; ms p50/p90/p99 per "
            f"call), batches of {serving['batch_size']} in arrival order and sorted by length, each padded to its "
            f"longest (sentences/s), {serving['repeats']} repeats interleaved"
        )
    cpu = f"; {cpu_line(machine)}" if machine.get("isa") is not None else ""
    return (
        f"{result['task']} dev ({result['dev_examples']} examples); {result['device']}, {result['threads']} threads; "
        f"{timing}; OMP_WAIT_POLICY {machine.get('omp_wait_policy', '?')}, onnxruntime without spinning; denormals "
        f"flushed to zero for every model; {result['warmup']} warm-up, {result['repeats']} repeats interleaved "
        f"round-robin; reference: {result['reference']}{cpu}{busy_note}"
    )


def markdown(result: dict) -> str:
    rows = table_rows(result)
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
    return "\n".join(lines) + f"\n\n{conditions(result)}\n"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _scatter(result: dict, x_key: str, xlabel: str, path: Path, front: bool) -> Path:
    plt = pyplot()
    models = result["models"]
    xs = [m[x_key] for m in models]
    ys = [m["dev_metric"] for m in models]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = {"pytorch": "tab:blue", "onnx-fp32": "tab:orange", "onnx-int8": "tab:green"}
    for i, (x, y, m) in enumerate(zip(xs, ys, models, strict=True)):
        ax.scatter(x, y, color=colors.get(m["kind"], "tab:gray"), label=m["kind"], zorder=3)
        # labels alternate above and below their point, so neighbours (fp32 vs int8 of one student) stay readable
        ax.annotate(m["name"], (x, y), textcoords="offset points", xytext=(5, 4 if i % 2 == 0 else -11), fontsize=8)
    if front:
        idx = pareto_front(list(zip(xs, ys, strict=True)))
        ax.step([xs[i] for i in idx], [ys[i] for i in idx], where="post", color="black", alpha=0.4)
        ax.scatter(
            [xs[i] for i in idx],
            [ys[i] for i in idx],
            s=160,
            facecolors="none",
            edgecolors="black",
            label="Pareto front (best metric for its latency)",
            zorder=2,
        )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    if max(xs) > 10 * min(xs) > 0:
        ax.set_xscale("log")
    ax.set(
        xlabel=xlabel, ylabel=f"dev {result['metric']}", title=f"{result['task']}: dev {result['metric']} vs {xlabel}"
    )
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def write_report(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write bench.json, bench.md and the plots into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "md": out / "bench.md"}
    write_json_atomic(paths["json"], result)
    write_text_atomic(paths["md"], markdown(result))
    shape = "one sentence" if result.get("timing") else f"x {result['seq_len']}"
    paths["latency_plot"] = _scatter(
        result, "latency_ms_median", f"latency ms (batch 1 {shape})", out / "metric_vs_latency.png", front=True
    )
    paths["size_plot"] = _scatter(result, "disk_mb", "size on disk (MB)", out / "metric_vs_size.png", front=False)
    return paths
