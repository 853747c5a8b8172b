"""What a frontier run writes: ``frontier.json`` / ``.md`` / ``.png``, the 80-column table it prints, and
``best``, the chosen model linked with a card section saying why it won."""

from __future__ import annotations

import json
import os
from pathlib import Path

from alembert.export.staging import EXPORT_INFO
from alembert.files import write_text_atomic
from alembert.frontier.chart import frontier_chart
from alembert.frontier.choose import choose, pareto


def _short_runtime(row: dict) -> str:
    """The export's variant (``int8-static``, ``openvino-int8``, ...) or ``pytorch``."""
    return row.get("variant", "")[:18]


def table_lines(rows: list[dict], front: list[str], best: str | None, metric: str) -> list[str]:
    """An 80-column table: each model's runtime, dev metric, share of the teacher's, batch-32 throughput and its
    speed-up over the teacher, batch-1 latency, size on disk; ``*`` on the Pareto set, ``<`` the chosen one."""
    head = f"{'model':<21} {'runs as':<18} {metric[:8]:>8} {'keeps':>6} {'seq/s':>7} {'x':>5} {'ms b1':>6}"
    lines = [head[:80]]
    for r in sorted(rows, key=lambda r: -r["throughput_seq_s"]):
        mark = ("*" if r["name"] in front else " ") + ("<" if r["name"] == best else "")
        lines.append(
            f"{r['name'][:21]:<21} {_short_runtime(r):<18} {r['dev_metric']:>8.4f} {r['retention_pct'] or 0:>5.1f}% "
            f"{r['throughput_seq_s']:>7.1f} {r['speedup_throughput'] or 0:>5.1f} {r['latency_ms_median']:>6.1f}{mark}"[
                :80
            ]
        )
    return lines


def markdown(summary: dict) -> str:
    """``frontier.md``: the plan's fate of every candidate, the measured table, the choice, the machine."""
    m = summary["metric"]
    out = [
        f"# Frontier of {summary['teacher']} on {summary['task']}",
        "",
        f"Measured in one bench run ({summary['threads']} thread(s), batch 32 x {summary['seq_len']} tokens, batch 1 "
        f"for latency) on {summary['machine']}. `*`: on the Pareto set.",
        "",
        f"| model | runtime | dev {m} | of teacher | seq/s (b32) | x teacher | ms (b1) | MB | Pareto |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in sorted(summary["rows"], key=lambda r: -r["throughput_seq_s"]):
        name = f"{r['name']}{' (peer)' if r['peer'] else ''}"
        runtime = r["runtime"].split("-")[0]  # "openvino 2026.4.1", without the build tag
        out.append(
            f"| {name} | {runtime}, {r['variant']} | {r['dev_metric']:.4f} | {r['retention_pct'] or 0:.1f}% | "
            f"{r['throughput_seq_s']:.1f} | {r['speedup_throughput'] or 0:.2f}x | {r['latency_ms_median']:.2f} | "
            f"{r['disk_mb']:.1f} | {'*' if r['name'] in summary['pareto'] else ''} |"
        )
    out += ["", f"**Choice**: {summary['why']}", ""]
    out += [f"**Peer {name}**: {verdict}" for name, verdict in summary["peers"].items()]
    out += ["", "## The plan", ""]
    out += [f"- {c['name']}: {c['status']}" for c in summary["candidates"]]
    out += ["", f"![frontier]({Path(summary['chart']).name})", ""]
    return "\n".join(out)


def bench_machine(machine: dict) -> str:
    """The CPU and the load the bench itself ran at (not the plan's: planning and measuring may be hours apart)."""
    isa = "/".join(machine.get("isa") or []) or "no AVX2/AVX-512/VNNI/AMX"
    before, after = machine.get("loadavg_1min_before"), machine.get("loadavg_1min_after")
    load = f", load average {before:.1f} before and {after:.1f} after timing" if before is not None else ""
    return f"{machine.get('cpu_model')} ({isa}), {machine.get('logical_cpus')} CPUs{load}"


def dominated_by(row: dict, rows: list[dict]) -> str | None:
    """The fastest of ``rows`` at least as fast and as good as ``row`` (None: none is)."""
    better = [
        r for r in rows if r["throughput_seq_s"] >= row["throughput_seq_s"] and r["dev_metric"] >= row["dev_metric"]
    ]
    return max(better, key=lambda r: r["throughput_seq_s"])["name"] if better else None


def frontier_table(result: dict, plan, fc, out: Path, peer_paths: set[str], seconds: float) -> dict:
    """The frontier's summary from the bench ``result``: rows, Pareto set, choice (among the teacher and the
    students: the peers are measured, not chosen), whether each peer is dominated, chart and markdown."""
    rows = result["models"]
    for r in rows:
        info = Path(r["path"]) / EXPORT_INFO
        rec = json.loads(info.read_text()) if info.is_file() else {}
        r["variant"] = rec.get("variant") or rec.get("quantization") or ("fp32" if rec else "pytorch")
        r["peer"] = r["path"] in peer_paths
    front = pareto(rows)
    own = [r for r in rows if not r["peer"]]
    best, why = choose(own, plan.budget)
    peers = {r["name"]: dominated_by(r, own) for r in rows if r["peer"]}
    teacher = rows[0]["name"]
    chart = frontier_chart(
        rows,
        front,
        out / "frontier.png",
        metric=result["metric"],
        title=f"{teacher} on {result['task']}: quality against speed ({result['threads']} thread(s))",
        teacher=teacher,
        best=best["name"] if best else None,
        peers=tuple(peers),
    )
    summary = {
        "teacher": str(fc.teacher),
        "task": result["task"],
        "metric": result["metric"],
        "threads": result["threads"],
        "seq_len": result["seq_len"],
        "machine": bench_machine(result["machine"]),
        "planned_on": plan.machine,
        "candidates": [{"name": c.name, "status": c.status} for c in plan.candidates],
        "rows": rows,
        "pareto": front,
        "best": best["name"] if best else None,
        "best_path": best["path"] if best else None,
        "why": why,
        "peers": {
            name: f"dominated by {by}" if by else "not dominated: no model of the frontier is as fast and as good"
            for name, by in peers.items()
        },
        "budget": plan.budget,
        "chart": str(chart),
        "seconds": seconds,
    }
    summary["table"] = table_lines(rows, front, summary["best"], result["metric"])
    summary["markdown"] = markdown(summary)
    return summary


def write_best(out: Path, summary: dict) -> Path:
    """``out/best``: a link to the chosen model's folder, whose card gains why it won (said once, replaced
    on a rerun)."""
    target = Path(summary["best_path"]).resolve()
    link = out / "best"
    tmp = out / ".best.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(target, out), tmp)
    os.replace(tmp, link)  # atomic: a link is either the old or the new one
    card = target / "README.md"
    text = card.read_text() if card.is_file() else ""
    marker = "\n## Why alembert frontier chose this model\n"
    text = text.split(marker)[0].rstrip("\n") + "\n" + marker + "\n" + summary["why"] + "\n\n"
    text += "\n".join(f"    {line}" for line in summary["table"]) + "\n"
    write_text_atomic(card, text)
    return link
