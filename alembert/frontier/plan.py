"""The frontier's plan: which students to train, predicted before any training.

Every student builder offers the students worth trying for the teacher (``Builder.offers``: depth
slices, pruned widths, static tables for sentence embeddings); each candidate has a fp32 variant
(PyTorch) and, unless int8 has nothing to speed up, an int8 one (its export, ``--quantize auto``).
The plan predicts each variant's speed on this CPU from a random model of its shape
(:mod:`.predict`), drops the candidates that no variant of which can meet the speed budget (with why),
and asks each remaining one's training run for its cost (``--dry-run``: a few real steps timed).
The candidates are then taken largest first (more of the teacher kept: the best expected quality)
while their estimated cost fits ``--time-budget``; the teacher's cache (its labels or embeddings,
the same rows for every student) is counted once.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from alembert.errors import AlembertError

PLANNED, OVER_TIME = "planned", "over the time budget"
VARIANTS = ("fp32", "int8")  # PyTorch as trained; its export (int8 where --quantize says so)
PREDICTOR = {"auto": "auto", "int8": "pytorch", "none": "none"}  # --quantize -> who predicts its int8 speed
INT8_BY = {"openvino": "OpenVINO (NNCF)", "pytorch": "PyTorch dynamic int8", "none": "none (--quantize none)"}


@dataclass
class Candidate:
    """One student of the plan: the builder's offer (``name``, ``builder``, ``fields``, ``shape``, ``train``,
    ``quantize``), its ``parameters``, ``predicted`` speed per variant (``fp32``, ``int8``), its estimated
    training ``cost_s`` (of which ``cache_s`` is the teacher's cache, shared), ``recipe`` (None: the task kind's
    own; its fallback where that one cannot train it) and ``status``: planned, over the time budget, or
    ``dropped: <why>``."""

    name: str
    builder: str
    fields: dict
    shape: dict
    train: dict
    quantize: str | None
    parameters: int = 0
    predicted: dict = field(default_factory=dict)
    cost_s: float | None = None
    cache_s: float = 0.0
    recipe: str | None = None
    status: str = PLANNED

    @property
    def planned(self) -> bool:
        return self.status == PLANNED


@dataclass
class Plan:
    """The candidates in the order they train, the teacher's predicted speed (``teacher``: fp32 and int8), the
    length and threads they were timed at, the budgets, the estimated seconds of all planned training, and the
    ``peers`` measured beside them (``name``, ``why``, ``cost_s``: their training, reserved from the budget)."""

    candidates: list[Candidate]
    teacher: dict
    seq_len: int
    threads: int
    budget: dict
    time_budget: float
    estimated_s: float
    machine: str
    peers: list[dict] = field(default_factory=list)
    int8_by: str = "none"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Plan:
        return cls(**{**d, "candidates": [Candidate(**c) for c in d["candidates"]]})

    @property
    def planned(self) -> list[Candidate]:
        return [c for c in self.candidates if c.planned]


def offered(config, sentence: bool) -> list[Candidate]:
    """Every builder's offers for a teacher of ``config`` (:data:`alembert.students.BUILDERS`, in order)."""
    from alembert.students import BUILDERS

    return [
        Candidate(o.name, b.name, o.fields, o.shape, o.train, o.quantize)
        for b in BUILDERS.values()
        for o in b.offers(config, sentence)
    ]


def too_slow(speed: dict, teacher_fp32: dict, budget_ms: float | None, speedup: float | None) -> str | None:
    """Why a variant's predicted ``speed`` misses the budget (None: it meets it)."""
    if budget_ms is not None and speed["latency_ms_median"] > budget_ms:
        return f"{speed['latency_ms_median']:.2f} ms at batch 1 > {budget_ms:g} ms"
    ratio = speed["throughput_seq_s"] / teacher_fp32["throughput_seq_s"]
    if speedup is not None and ratio < speedup:
        return f"{ratio:.1f}x the teacher's throughput < {speedup:g}x"
    return None


def apply_budget(candidates: list[Candidate], teacher: dict, budget_ms: float | None, speedup: float | None) -> None:
    """Drop (``status``) every candidate none of whose variants can meet the speed budget; one line before any
    training when no candidate, nor the teacher's own int8, can."""
    if budget_ms is None and speedup is None:
        return
    fp32 = teacher["fp32"]
    for c in candidates:
        misses = {v: too_slow(s, fp32, budget_ms, speedup) for v, s in c.predicted.items()}
        if all(misses.values()):
            best = min(misses, key=lambda v: c.predicted[v]["latency_ms_median"])
            c.status = f"dropped: predicted {misses[best]} ({best})"
    teacher_ok = any(not too_slow(s, fp32, budget_ms, speedup) for s in teacher.values())
    if not teacher_ok and not any(c.planned for c in candidates):
        fastest = min(
            ((c.name, v, s) for c in candidates for v, s in c.predicted.items()),
            key=lambda t: t[2]["latency_ms_median"],
            default=None,
        )
        miss = too_slow(fastest[2], fp32, budget_ms, speedup) if fastest else ""
        near = f"; the fastest, {fastest[0]} ({fastest[1]}), is predicted at {miss}" if fastest else ""
        asked = " and ".join(
            x for x in (budget_ms and f"--budget-ms {budget_ms:g}", speedup and f"--speedup {speedup:g}") if x
        )
        raise AlembertError(f"no candidate can meet {asked} on this CPU{near}; relax the budget (nothing was trained)")


def fit_time(candidates: list[Candidate], seconds: float) -> float:
    """Mark, largest first, the planned candidates whose estimated cost still fits ``seconds`` (the
    shared teacher cache paid once, by the first); the rest are over the time budget. Returns the
    estimated seconds of the planned ones."""
    spent, cache_paid = 0.0, False
    for c in sorted((c for c in candidates if c.planned), key=lambda c: -c.parameters):
        cost = (c.cost_s or 0.0) - (c.cache_s if cache_paid else 0.0)
        if spent + cost <= seconds:
            spent += cost
            cache_paid = cache_paid or c.cache_s > 0
        else:
            c.status = OVER_TIME
    return spent


def quiet(call: Callable[[], Any]) -> Any:
    """A dry run's plan without its printed plan and step lines (the frontier prints its own table)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return call()


def make_plan(fc, kind, estimate: Callable[[Candidate], dict], peers=(), progress=print) -> Plan:
    """The plan of ``fc`` (a :class:`~alembert.config.schema.FrontierConfig`) for the task ``kind``;
    ``estimate(candidate)`` is the candidate's dry-run plan (``estimated_seconds``, ``stages``); ``peers``:
    (:class:`~alembert.tasks.base.Peer`, its folder) pairs, whose training is estimated and reserved first."""
    import torch

    from alembert.frontier.predict import predict
    from alembert.models.load import load_config
    from alembert.training.plan import machine

    config = load_config(fc.teacher)
    candidates = offered(config, kind.sentence_encoder)
    if fc.candidates:
        names = [c.name for c in candidates]
        unknown = [n for n in fc.candidates if n not in names]
        if unknown:
            raise AlembertError(
                f"--candidates {', '.join(unknown)}: not offered for {fc.teacher}; choose from {', '.join(names)}"
            )
        candidates = [c for c in candidates if c.name in fc.candidates]
    seq_len = fc.data.max_length or kind.default_max_length(fc.teacher)
    progress(f"frontier: predicting the speed of {len(candidates)} candidates and the teacher on this CPU")
    shapes = {"teacher": {}, **{c.name: c.shape for c in candidates}}
    int8 = {"teacher", *(c.name for c in candidates if c.quantize)}
    builders = {c.name: c.builder for c in candidates}
    speeds = predict(config, shapes, seq_len, fc.threads, int8=int8, runtime=PREDICTOR[fc.quantize], builders=builders)
    teacher = {v: s for v, s in speeds["teacher"].items() if v in VARIANTS}
    for c in candidates:
        c.parameters = speeds[c.name]["parameters"]
        c.predicted = {v: s for v, s in speeds[c.name].items() if v in VARIANTS}
    apply_budget(candidates, teacher, fc.budget_ms, fc.speedup)
    kept = sorted((c for c in candidates if c.planned), key=lambda c: -c.parameters)
    for i, c in enumerate(kept, 1):
        progress(f"frontier: estimating the training of {c.name} ({i}/{len(kept)}, a few steps timed)")
        try:
            plan = quiet(lambda c=c: estimate(c))
        except AlembertError as exc:  # the kind's recipe cannot train this one: its fallback, else said, not fatal
            c.recipe = kind.fallback_recipe
            try:
                plan = quiet(lambda c=c: estimate(c)) if c.recipe else None
            except AlembertError:
                plan = None
            if plan is None:
                c.recipe, c.status = None, f"dropped: {exc}"
                continue
            progress(f"frontier: {c.name} trains with {c.recipe} ({exc})")
        c.cost_s = float(plan["estimated_seconds"])
        c.cache_s = float(sum(s.get("cache_seconds", 0.0) for s in plan.get("stages", [])))
    planned_peers = []
    for peer, folder in peers:
        cost = None if peer.estimate is None else 0.0  # None: not a training run (as shipped, or model2vec's)
        if peer.estimate is not None and not peer.done(folder):
            progress(f"frontier: estimating the peer {peer.name} ({peer.why})")
            try:
                cost = quiet(lambda p=peer, f=folder: p.estimate(f))
            except AlembertError as exc:
                progress(f"frontier: peer {peer.name} left out: {exc}")
                continue
        planned_peers.append({"name": peer.name, "why": peer.why, "cost_s": None if cost is None else round(cost, 1)})
    reserved = sum(p["cost_s"] or 0.0 for p in planned_peers)
    total = reserved + fit_time(candidates, max(0.0, fc.time_budget - reserved))
    over = [c for c in candidates if c.status == OVER_TIME]
    if over and not any(c.planned for c in candidates):
        cheapest = min(over, key=lambda c: c.cost_s or 0.0)
        raise AlembertError(
            f"no candidate's training fits --time-budget {fc.time_budget:.0f} s"
            + (f" (the peers take {reserved:.0f} s of it)" if reserved else "")
            + f": the cheapest, {cheapest.name}, is estimated at {cheapest.cost_s:.0f} s; raise the budget "
            "(nothing was trained)"
        )
    candidates.sort(key=lambda c: (not c.planned, -c.parameters))
    budget = {"budget_ms": fc.budget_ms, "speedup": fc.speedup, "min_retention": fc.min_retention}
    threads = fc.threads or torch.get_num_threads()
    by = speeds["teacher"].get("int8_by", "none")
    return Plan(
        candidates, teacher, seq_len, threads, budget, fc.time_budget, round(total, 1), machine(), planned_peers, by
    )


def _duration(s: float | None) -> str:
    from alembert.training.plan import duration

    return "-" if s is None else duration(s)


def format_plan(plan: Plan) -> str:
    """The plan as an 80-column table: candidate, parameters, predicted speed-up of each variant over the
    fp32 teacher (batch 32), the estimated training, and what happens to it."""
    base = plan.teacher["fp32"]["throughput_seq_s"]
    lines = [
        f"frontier plan: {len(plan.planned)} of {len(plan.candidates)} candidates, "
        f"about {_duration(plan.estimated_s)} of training (budget {_duration(plan.time_budget)}), "
        f"speed predicted at batch 32 x {plan.seq_len} on {plan.threads} thread(s), int8 by {INT8_BY[plan.int8_by]}",
        f"{'candidate':<22} {'params':>7} {'fp32':>7} {'int8':>7} {'train':>7}  status",
    ]
    rows = [("teacher", None, plan.teacher, None, "the reference")]
    rows += [
        (c.name, c.parameters, c.predicted, c.cost_s, c.status + (f" ({c.recipe})" if c.recipe else ""))
        for c in plan.candidates
    ]
    for name, params, pred, cost, status in rows:
        speed = {v: f"{pred[v]['throughput_seq_s'] / base:.1f}x" if v in pred else "-" for v in ("fp32", "int8")}
        p = f"{params / 1e6:.1f}M" if params else ""
        short = status if not status.startswith("dropped") else "dropped"
        lines.append(f"{name:<22} {p:>7} {speed['fp32']:>7} {speed['int8']:>7} {_duration(cost):>7}  {short}"[:80])
    lines += [f"  {c.name} {c.status}" for c in plan.candidates if c.status.startswith("dropped")]
    lines += [
        f"peer {p['name']}" + (f" (training about {_duration(p['cost_s'])})" if p["cost_s"] else "") + f": {p['why']}"
        for p in plan.peers
    ]
    lines.append(f"machine: {plan.machine}")
    return "\n".join(lines)
