"""``--dry-run``: what a run will do and cost on this machine, measured, not guessed.

The command runs its real validation and set-up (so a bad input is the same one-line error
as in the real run), then, instead of opening the output folder:

* times a few optimiser steps of the real module (student, projections, online teacher)
  on the run's first real batches through the same :func:`~alembert.training.loop.fit`
  (no evaluation, no checkpoint, nothing logged); the first step is a warm-up and not
  counted. Step time is fitted as ``a + b x padded tokens`` over the timed steps and
  applied to the padded tokens of every step of the run (the batch sampler gives them
  without touching the data), so short timed batches do not bias a run of long ones;
* times one dev evaluation (and the teacher's, when the run has one) and multiplies by
  the number of evaluations;
* for a teacher cache not yet on disk, times the teacher on a few real training batches
  and scales to the training set; the cache's size follows from its shape. The timed
  steps of a cached stage read zeros of the cache's shape (same cost as the real cache);
* reports the measured set-up time (imports, model and data loading, from the process start), the process's peak memory
  (resident set on CPU, allocated memory on CUDA) and the machine (CPU model, GPU).

Nothing is written: no output folder, no teacher cache (the tokenised data cache of the
real run may be filled, as the real run would fill it first).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from alembert.training.logger import RunLogger
from alembert.training.loop import Callbacks, FitSpec, fit, total_steps

TIMED_STEPS = 6  # after one warm-up step


@dataclass
class PlannedStage:
    """One stage as the real run would train it. ``teacher``: "none", "online" or "cached";
    ``cache_ready``: the cache is already on disk; ``cache_bytes``: its size;
    ``cache_probe()``: seconds to compute the cache (timed on a few batches, extrapolated)."""

    name: str
    module: torch.nn.Module
    loader: object
    sampler: object
    spec: FitSpec
    teacher: str = "none"
    cache_ready: bool = False
    cache_bytes: int = 0
    cache_examples: int = 0
    cache_probe: Callable[[], float] | None = None
    evals: int = field(default=0, init=False)


@torch.inference_mode()
def time_forward(model, batches, examples: int, n: int = 3, hidden: bool = True) -> float:
    """Seconds for ``model`` to run over ``examples`` examples, from ``n`` timed batches of
    ``batches`` (an iterable of (indices, batch)) after one warm-up. ``model``: a torch module or a
    runtime's model (``hidden``: ask for the hidden states too, as a cache of [CLS] states does)."""
    device = model.device
    seen, spent = 0, 0.0
    for k, (idx, batch) in enumerate(batches):
        batch = {key: v.to(device) for key, v in batch.items() if key not in ("labels", "idx")}
        t = time.perf_counter()
        model(**batch, **({"output_hidden_states": True} if hidden else {}))
        if k:  # the first is a warm-up
            spent, seen = spent + time.perf_counter() - t, seen + len(idx)
        if k >= n:
            break
    return spent / max(seen, 1) * examples


def padded_tokens(sampler, epoch: int = 0) -> list[int]:
    """Padded tokens (batch x its longest row) of each batch the sampler yields in ``epoch``."""
    lengths = getattr(sampler, "lengths", None)
    if lengths is None:
        return []
    sampler.set_epoch(epoch)
    return [len(b) * max(lengths[i] for i in b) for b in iter(sampler)]


def step_model(seconds: list[float], tokens: list[float]) -> Callable[[float], float]:
    """Seconds of one step as a function of its padded tokens: least squares ``a + b t`` when
    both come out positive, else the mean time (the timed batches too alike to separate them)."""
    mean = sum(seconds) / len(seconds)
    if len(seconds) >= 3 and len(set(tokens)) > 1:
        b, a = np.polyfit(np.asarray(tokens, float), np.asarray(seconds, float), 1)
        if a > 0 and b > 0:
            return lambda t: a + b * t
    return lambda t: mean


def machine() -> str:
    from alembert.machine import cpu_facts

    facts = cpu_facts()  # the same CPU facts every bench and export records
    isa = "/".join(facts["isa"]) or "no AVX2/AVX-512/VNNI/AMX"
    cpu = f"{facts['cpu_model']} ({isa})"
    threads = torch.get_num_threads()
    text = f"{cpu}, {os.cpu_count()} CPUs, torch threads {threads}"
    if hasattr(os, "getloadavg"):  # other work on the machine slows every step: the estimate holds for this load
        text += f", load average {os.getloadavg()[0]:.1f} while timing"
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text


def process_age(fallback: float) -> float:
    """Seconds since this process started (imports included: the real run pays them too);
    ``fallback`` (seconds since the run began) where /proc is not there."""
    try:
        with open("/proc/self/stat", encoding="utf-8") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="utf-8") as fh:
            uptime = float(fh.read().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), fallback)
    except (OSError, ValueError, IndexError):
        return fallback


def peak_memory_bytes(accelerator) -> int:
    if accelerator.device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(accelerator.device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def _time_stage(run, st: PlannedStage, timed: int) -> tuple[float, int, dict]:
    """(estimated seconds of the stage's training steps, its steps, details)."""
    cfg = st.spec.train
    steps = total_steps(len(st.loader), cfg)
    per_step: list[float] = []
    micro = padded_tokens(st.sampler)
    accum = cfg.grad_accum
    grouped = [sum(micro[i : i + accum]) for i in range(0, len(micro) - accum + 1, accum)] if micro else []
    n = min(steps, timed + 1)
    spec = FitSpec(
        train=cfg.model_copy(update={"max_steps": n, "save_every": None, "log_every": 10**9}),
        main_metric=st.spec.main_metric,
        evaluate=None,
        stage=st.spec.stage,
    )
    fit(
        st.module,
        st.loader,
        st.sampler,
        spec,
        run.accelerator,
        RunLogger(None, enabled=False),
        Callbacks(on_step=lambda step, s, terms: per_step.append(s)),
    )
    seconds, toks = per_step[1:] or per_step, (grouped[1:n] if len(grouped) >= n else [])
    model = step_model(seconds, toks) if len(toks) == len(seconds) else step_model(seconds, [0.0] * len(seconds))
    if grouped:  # every step of the run: epoch after epoch, same sampler (the order changes, not the sizes)
        all_steps = [grouped[i % len(grouped)] for i in range(steps)]
        total = sum(model(t) for t in all_steps)
    else:
        total = model(0.0) * steps
    return total, steps, {"timed_steps": len(seconds), "mean_step_s": round(sum(seconds) / len(seconds), 4)}


def estimate(
    run,
    *,
    what: str,
    examples: dict,
    stages: list[PlannedStage],
    evaluations: dict[str, Callable[[], dict]],
    timed: int = TIMED_STEPS,
) -> dict:
    """Time the stages (see the module docstring), print the plan on the main process, return it.

    ``evaluations``: name -> a callable run once to time it: ``"student"`` (every stage's dev
    evaluation) and optionally ``"teacher"`` (once per run)."""
    acc = run.accelerator
    setup_s = process_age(time.time() - run.created)
    plan_stages, total = [], setup_s
    eval_s = {}
    for name, fn in evaluations.items():
        t = time.perf_counter()
        fn()
        eval_s[name] = time.perf_counter() - t
    total += eval_s.get("teacher", 0.0)
    for st in stages:
        train_s, steps, info = _time_stage(run, st, timed)
        cfg = st.spec.train
        every = cfg.eval_every or max(1, len(st.loader) // cfg.grad_accum)
        n_evals = (steps // every + (steps % every != 0)) if st.spec.evaluate is not None else 0
        cache_s = st.cache_probe() if st.teacher == "cached" and not st.cache_ready and st.cache_probe else 0.0
        stage_s = train_s + n_evals * eval_s.get("student", 0.0) + cache_s
        total += stage_s
        teacher = {
            "none": "no teacher",
            "online": f"teacher online: every step ({steps * cfg.grad_accum} teacher forward passes)",
            "cached": "teacher cached: "
            + ("already on disk" if st.cache_ready else f"one pass over {st.cache_examples} examples, then read back"),
        }[st.teacher]
        epochs = round(steps * cfg.grad_accum / max(1, len(st.loader)), 2)  # what --max-steps leaves of --epochs
        plan_stages.append(
            {
                "stage": st.name,
                "steps": steps,
                "batch_size": cfg.batch_size,
                "epochs": epochs,
                "teacher": teacher,
                "cache_bytes": st.cache_bytes if st.teacher == "cached" else 0,
                "cache_seconds": round(cache_s, 1),
                "evaluations": n_evals,
                "train_seconds": round(train_s, 1),
                "seconds": round(stage_s, 1),
                **info,
            }
        )
    plan = {
        "dry_run": True,
        "command": run.command,
        "what": what,
        **examples,
        "stages": plan_stages,
        "steps": sum(s["steps"] for s in plan_stages),
        "cache_bytes": sum(s["cache_bytes"] for s in plan_stages),
        "eval_seconds": {k: round(v, 2) for k, v in eval_s.items()},
        "setup_seconds": round(setup_s, 1),
        "peak_memory_bytes": peak_memory_bytes(acc),
        "estimated_seconds": round(total, 1),
        "processes": acc.num_processes,
        "machine": machine(),
    }
    if acc.is_main_process:
        print(format_plan(plan), flush=True)
    return plan


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def duration(s: float) -> str:
    """Seconds as a person reads them: 45 s, 7.8 min, 2.4 h."""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def format_plan(p: dict) -> str:
    lines = [
        f"dry run of `alembert {p['command']}`: {p['what']} (nothing written)",
        "  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in p.items() if k.endswith("_examples")),
    ]
    if p.get("transfer"):  # classification distillation: where the teacher-labelled rows come from
        from alembert.data.transfer import TransferPlan

        t = {k: v for k, v in p["transfer"].items() if k != "rows"}
        lines.append("  " + TransferPlan(**t).line())
    for stage, labels in (p.get("teacher_labels") or {}).items():  # who labels each cached stage's rows
        lines.append(f"  stage {stage}: teacher labels: {labels['note']}")
    for s in p["stages"]:
        lines.append(
            f"  stage {s['stage']}: {s['steps']} steps of batch {s['batch_size']} ({s['epochs']:g} epochs), "
            f"{s['teacher']}"
            + (f", cache {_size(s['cache_bytes'])} on disk" if s["cache_bytes"] else "")
            + f", {s['evaluations']} dev evaluations; about {duration(s['seconds'])}"
            f" (step {s['mean_step_s']:.3f} s measured over {s['timed_steps']})"
        )
    lines.append(
        f"  set-up (models, data) {duration(p['setup_seconds'])}; one evaluation "
        + ", ".join(f"{k} {v:.1f} s" for k, v in p["eval_seconds"].items())
    )
    lines.append(
        f"  peak memory about {_size(p['peak_memory_bytes'])}; teacher cache {_size(p['cache_bytes'])} on disk"
    )
    lines.append(
        f"  estimated wall time {duration(p['estimated_seconds'])} on {p['machine']}"
        + (f", {p['processes']} processes" if p["processes"] > 1 else "")
    )
    return "\n".join(lines)
