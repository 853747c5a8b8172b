"""``alembert frontier``'s run: plan, train, export, measure, choose; resumable between any two steps.

The output folder::

    plan.json                 the plan (candidates, predicted speeds, estimated costs): a resumed run keeps it
    students/<candidate>/     each candidate's training run (its own metrics.json, card, checkpoints)
    exports/<model>-export/   the teacher's and each student's export by --quantize auto (int8 where it pays)
    bench/                    one bench run of every model: bench.json, bench.md
    frontier.json, .md, .png  the measured frontier, its Pareto set and the choice
    best                      a link to the chosen model's folder (with a budget that some model meets)

A killed run continues with ``--resume``: a candidate with its ``metrics.json`` is done, one with
checkpoints continues from the newest, an export with its record is kept; the plan is not made again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from alembert.errors import AlembertError
from alembert.files import check_output_folder, lock_output, write_json_atomic, write_text_atomic
from alembert.frontier.plan import Candidate, Plan, format_plan, make_plan
from alembert.frontier.report import frontier_table, write_best
from alembert.models.resolve import resolve_model

PLAN = "plan.json"
SKIPPED = "skipped: the time budget was spent"


def student_train(fc, kind, c: Candidate) -> dict:
    """The ``train`` fields candidate ``c`` trains with over ``fc.train``: the kind's usual ones where the
    user set none, then what the candidate itself needs (a static table's learning rate)."""
    given = fc.train.model_fields_set
    return {**{k: v for k, v in kind.student_train.items() if k not in given}, **c.train}


def check_output(fc) -> Path:
    """The output folder, checked before any work: a new or empty folder, or ``--resume`` of a frontier there."""
    out = Path(fc.output_dir)
    for given, why in (
        (fc.overwrite, "--overwrite: a frontier keeps every candidate's run; choose another --output, or --resume"),
        (fc.push_to_hub, "--push-to-hub: a frontier pushes nothing; push the chosen model (DIR/best) once it is there"),
        (fc.resume_force, "--resume-force: resume a candidate's own run with it (alembert distill ... --resume-force)"),
    ):
        if given:
            raise AlembertError(why)
    check_output_folder(out)  # not a file, creatable, writable: nothing is created
    started = out.is_dir() and any(out.iterdir())
    if fc.resume and not (out / PLAN).is_file():
        raise AlembertError(f"--resume: {out} holds no frontier plan ({PLAN}); pass the --output of the run to resume")
    if started and not fc.resume and not fc.dry_run:
        raise AlembertError(
            f"output {out} is not empty (an earlier frontier run?); pass --resume to continue it, "
            "or choose another --output"
        )
    return out


def _done_seconds(folder: Path) -> float:
    return float(json.loads((folder / "metrics.json").read_text()).get("train_seconds") or 0.0)


def run_frontier(fc, progress=print) -> dict:
    """The frontier of ``fc`` (a :class:`~alembert.config.schema.FrontierConfig`): see the module docstring.
    Returns the summary written to ``frontier.json`` (with ``--dry-run``: ``{"dry_run": True, "plan": ...}``)."""
    from alembert.tasks import task_kind
    from alembert.tasks.base import TaskKind

    kind = task_kind(fc.data.task)
    if type(kind).distill_student is TaskKind.distill_student:  # a kind with no student run of its own
        kind.distill_student(fc, {}, {}, fc.output_dir)  # its one-line refusal
    out = check_output(fc)
    students = out / "students"

    def estimate(c: Candidate) -> dict:
        return kind.distill_student(
            fc, c.fields, student_train(fc, kind, c), students / c.name, recipe=c.recipe, dry_run=True
        )

    peers = [(p, out / "peers" / p.name) for p in (kind.peers(fc) if fc.peers else [])]
    if fc.resume:
        plan = Plan.from_json(json.loads((out / PLAN).read_text()))
        progress(f"frontier: resuming {out} with its plan")
        asked = {"budget_ms": fc.budget_ms, "speedup": fc.speedup, "min_retention": fc.min_retention}
        if asked != plan.budget:  # the candidates stay the plan's; the choice is made for the budget asked now
            progress(f"frontier: choosing for {asked}, not the plan's {plan.budget} (the candidates stay the plan's)")
            plan.budget = asked
    else:
        plan = make_plan(fc, kind, estimate, peers, progress)
    progress(format_plan(plan))
    if fc.dry_run:
        return {"dry_run": True, "plan": plan.to_json()}
    out.mkdir(parents=True, exist_ok=True)
    lock_output(out)
    write_json_atomic(out / PLAN, plan.to_json())

    trained, spent, started = [], 0.0, time.time()
    todo = plan.planned
    for i, c in enumerate(todo, 1):
        folder = students / c.name
        if (folder / "metrics.json").is_file():
            spent += _done_seconds(folder)
            trained.append(c)
            progress(f"frontier: {c.name} already trained ({i}/{len(todo)})")
            continue
        if spent >= fc.time_budget:
            c.status = SKIPPED
            progress(f"frontier: {c.name} {SKIPPED} ({spent:.0f} s of {fc.time_budget:.0f} s)")
            continue
        left = sum(x.cost_s or 0.0 for x in todo[i - 1 :])
        progress(
            f"frontier: training {c.name} ({i}/{len(todo)}, about {c.cost_s or 0:.0f} s; "
            f"about {left / 60:.0f} min of training left)"
        )
        resume = any(folder.glob("checkpoints/stage*-step*"))
        t = time.time()
        kind.distill_student(
            fc,
            c.fields,
            student_train(fc, kind, c),
            folder,
            recipe=c.recipe,
            resume=resume,
            overwrite=folder.exists() and not resume,
        )
        spent += time.time() - t
        trained.append(c)
    write_json_atomic(out / PLAN, plan.to_json())  # the candidates skipped for time say so

    peer_models = make_peers([(p, f) for p, f in peers if p.name in {x["name"] for x in plan.peers}], progress)
    models = export_all(fc, kind, out, trained, progress, plan.threads) + peer_models
    progress(f"frontier: measuring {len(models)} models in one bench run")
    from alembert.measure.run import run_bench

    bench_data = {k: v for k, v in kind.export_data(fc.data).items() if k not in ("task", "data_dir", "max_length")}
    result = run_bench(
        [str(m) for m in models],
        fc.data.task,
        out / "bench",
        threads=plan.threads,
        seq_len=plan.seq_len,
        max_eval_samples=fc.data.max_eval_samples,
        data_dir=fc.data.data_dir,
        data=bench_data,
        serving=False,
        kind=kind,
    )
    peer_paths = {str(resolve_model(m)) for m in peer_models}
    summary = frontier_table(result, plan, fc, out, peer_paths, seconds=round(time.time() - started, 1))
    write_json_atomic(out / "frontier.json", summary)
    write_text_atomic(out / "frontier.md", summary["markdown"])
    if summary["best"]:
        write_best(out, summary)
    return summary


def make_peers(peers, progress) -> list[Path | str]:
    """Each peer's model: as it ships, or made into its folder (resumed where its run left checkpoints)."""
    models: list[Path | str] = []
    for peer, folder in peers:
        if peer.path is not None:
            models.append(peer.path)
            continue
        if not peer.done(folder):
            progress(f"frontier: making the peer {peer.name} ({peer.why})")
            peer.make(folder, any(folder.glob("checkpoints/stage*-step*")))
        models.append(folder)
    return models


def export_all(fc, kind, out: Path, trained: list[Candidate], progress, threads: int) -> list[Path | str]:
    """The teacher, its export, and each trained student with its export (where its builder offers one), in the
    bench's order; an export already recorded is kept. The variants are timed on the bench's ``threads``, the
    threads the choice is made for (a resumed run has not set them by training)."""
    from alembert.export.onnx import export_onnx
    from alembert.export.staging import EXPORT_INFO
    from alembert.machine import torch_threads

    data = kind.export_data(fc.data)
    models: list[Path | str] = [fc.teacher]
    sources = [("teacher", fc.teacher, "auto")] + [(c.name, out / "students" / c.name, c.quantize) for c in trained]
    for name, src, offered in sources:
        if name != "teacher":
            models.append(Path(src))
        quantize = None if offered is None or fc.quantize == "none" else fc.quantize
        if quantize is None:
            continue
        dst = out / "exports" / f"{name}-export"
        if not (dst / EXPORT_INFO).is_file():
            progress(f"frontier: exporting {name} (--quantize {quantize}: variants built, timed and scored here)")
            with torch_threads(threads):
                export_onnx(src, dst, quantize=quantize, data=data, overwrite=dst.exists())
        models.append(dst)
    return models
