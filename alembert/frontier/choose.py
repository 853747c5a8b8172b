"""The answer of a frontier: the Pareto set of the measured models, and the best one for a budget.

A model is on the Pareto set when no other is at least as fast (batch-32 throughput) and at least as
good (the task's dev metric) and strictly better at one of them. With a budget (batch-1 latency,
a speed-up over the fp32 teacher, a share of its quality), the best model is the best-scoring one that
meets every part of it, the faster on a tie; when none does, one line names the closest.

Rows are the bench's (:func:`alembert.measure.run.run_bench`): ``name``, ``dev_metric``,
``throughput_seq_s``, ``latency_ms_median``, ``retention_pct``, ``speedup_throughput``.

Example::

    pareto([{"name": "a", "dev_metric": .9, "throughput_seq_s": 10}, {"name": "b", "dev_metric": .8,
            "throughput_seq_s": 5}])          # ["a"]: b is slower and worse
"""

from __future__ import annotations


def pareto(rows: list[dict]) -> list[str]:
    """The names of the rows no other row dominates, fastest first."""

    def dominates(a: dict, b: dict) -> bool:
        ge = a["throughput_seq_s"] >= b["throughput_seq_s"] and a["dev_metric"] >= b["dev_metric"]
        gt = a["throughput_seq_s"] > b["throughput_seq_s"] or a["dev_metric"] > b["dev_metric"]
        return ge and gt

    front = [r for r in rows if not any(dominates(o, r) for o in rows if o is not r)]
    return [r["name"] for r in sorted(front, key=lambda r: -r["throughput_seq_s"])]


def misses(row: dict, budget: dict) -> list[str]:
    """What of ``budget`` (``budget_ms``, ``speedup``, ``min_retention``; None: no limit) ``row`` misses."""
    out = []
    if budget.get("budget_ms") is not None and row["latency_ms_median"] > budget["budget_ms"]:
        out.append(f"{row['latency_ms_median']:.2f} ms at batch 1 > {budget['budget_ms']:g} ms")
    if budget.get("speedup") is not None and (row["speedup_throughput"] or 0) < budget["speedup"]:
        out.append(f"{row['speedup_throughput']:.1f}x the teacher's throughput < {budget['speedup']:g}x")
    if budget.get("min_retention") is not None and (row["retention_pct"] or 0) < budget["min_retention"]:
        out.append(f"keeps {row['retention_pct']:.1f}% of the teacher < {budget['min_retention']:g}%")
    return out


def has_budget(budget: dict) -> bool:
    return any(budget.get(k) is not None for k in ("budget_ms", "speedup", "min_retention"))


def choose(rows: list[dict], budget: dict) -> tuple[dict | None, str]:
    """(the chosen row, why) for ``budget``; (None, why) when no budget was given or nothing meets it.
    With only ``min_retention`` the fastest row that keeps it wins; with a speed budget, the best-scoring
    row within it (the faster on a tie)."""
    if not has_budget(budget):
        return None, "no budget given: the Pareto set is the answer"
    ok = [r for r in rows if not misses(r, budget)]
    speed_limited = budget.get("budget_ms") is not None or budget.get("speedup") is not None
    if ok:
        key = (
            (lambda r: (r["dev_metric"], r["throughput_seq_s"])) if speed_limited else (lambda r: r["throughput_seq_s"])
        )
        best = max(ok, key=key)
        why = (
            f"the best {best['dev_metric']:.4f} of the {len(ok)} models within the budget"
            if speed_limited
            else f"the fastest ({best['throughput_seq_s']:.1f} seq/s) of the {len(ok)} models keeping the quality asked"
        )
        return best, f"{best['name']}: {why} ({describe(budget)})"
    # the fewest parts missed; then, against a speed budget the fastest, against a quality one the best
    closest = min(
        rows,
        key=lambda r: (len(misses(r, budget)), -(r["throughput_seq_s"] if speed_limited else r["dev_metric"])),
    )
    return None, (
        f"no model meets {describe(budget)}: the closest, {closest['name']}, misses by "
        + "; ".join(misses(closest, budget))
    )


def describe(budget: dict) -> str:
    parts = []
    if budget.get("budget_ms") is not None:
        parts.append(f"batch-1 latency <= {budget['budget_ms']:g} ms")
    if budget.get("speedup") is not None:
        parts.append(f">= {budget['speedup']:g}x the fp32 teacher's throughput")
    if budget.get("min_retention") is not None:
        parts.append(f">= {budget['min_retention']:g}% of its quality")
    return ", ".join(parts)
