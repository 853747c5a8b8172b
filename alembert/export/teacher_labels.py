"""The teacher's labels for the cache, from the fastest runtime that keeps its dev metric.

Why: transfer text makes distillation pay on small sets, but the teacher must label it first,
and a 12-layer teacher in PyTorch labels ~17 texts/s on a 2-core CPU: 20,000 texts take 20 min.
Its int8 export runs 3-4x faster, and the labels need not be exact, only as good: so when a cached
stage reads the teacher's logits only (no hidden states an export does not give) and the PyTorch
teacher would take more than :data:`WORTH_SECONDS` on the rows (timed on a sample of them: the
export itself costs minutes), the teacher is exported with ``--quantize auto``'s rules (every
candidate of :data:`CANDIDATES` that runs here, timed here; one whose dev metric is more than
``export.auto.MAX_DROP`` below the PyTorch teacher's is refused), the export is kept in the cache
(keyed by the teacher's weights and max length), and the fastest kept variant labels the rows.

It falls back to PyTorch, with a note saying why, when: the stage needs hidden states, the rows are
too few to repay the export (an export already in the cache is used whatever their number), the
export is refused (no variant keeps the dev metric, no graph), or the export is not faster than the
PyTorch teacher on a sample of the run's own rows. The note and the measured speed-up go into the
run's log, ``metrics.json`` and ``--dry-run``'s plan.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path

from alembert.errors import AlembertError

MIN_ROWS = 2_000  # below this no export is considered (not even timed)
# An export of a 12-layer teacher (graph, four variants built, scored on the dev set and timed) took about
# 10 min on one thread here; labelling that the PyTorch teacher does in less than this is left to it.
WORTH_SECONDS = 300.0
CANDIDATES = ("int8-dynamic", "int8-static", "openvino-int8", "openvino-int8-bf16")  # fp32 is always added
SAMPLE_ROWS = 64  # rows of the run's own set timed on both sides for the speed-up


@dataclass
class Labeller:
    """Who computes the teacher's cached logits: ``model`` (a runtime's, HF calling convention) or
    None for the PyTorch teacher; ``note`` says why; ``speedup`` is the runtime over PyTorch on the
    run's rows (None when not measured)."""

    note: str
    model: object | None = None
    variant: str | None = None
    speedup: float | None = None
    export: str | None = None
    pending: bool = False  # dry run: the export is not built yet

    @property
    def source(self) -> str | None:
        """What the cache key records about who computed the logits (None: the PyTorch teacher)."""
        return f"export:{self.variant}" if self.model is not None else None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}

    def line(self) -> str:
        return f"teacher labels: {self.note}"


def export_folder(teacher, max_length: int) -> Path:
    from alembert.distill.teacher_cache import weights_fingerprint
    from alembert.paths import cache_dir

    key = hashlib.sha256(f"{weights_fingerprint(teacher)}|{max_length}|{','.join(CANDIDATES)}".encode()).hexdigest()
    return cache_dir() / "teacher-exports" / key[:24]


def choose_labeller(
    teacher,
    teacher_path: str,
    data: dict,
    rows,
    tokenizer,
    layers: list[int],
    dry_run: bool = False,
    enabled=True,
    autocast=None,
) -> Labeller:
    """The :class:`Labeller` for a cached stage over ``rows`` (the tokenised set the teacher labels).
    ``data``: the run's DataConfig fields (the dev set the export is checked on); ``autocast``: the
    run's mixed-precision dtype, under which the PyTorch teacher is timed (as its cache would run)."""
    if not enabled:
        return Labeller("PyTorch teacher (--no-fast-teacher)")
    if layers:
        return Labeller("PyTorch teacher: the stage caches its [CLS] states, which an export does not give")
    if len(rows) < MIN_ROWS:
        return Labeller(f"PyTorch teacher: {len(rows):,} rows < {MIN_ROWS:,}, an export would cost more than it saves")
    from alembert.export.staging import EXPORT_INFO

    folder = export_folder(teacher, data["max_length"])
    batches = _sample_batches(rows, tokenizer)
    torch_s = _seconds(teacher, batches, 2, autocast)  # PyTorch timed once: the estimate and the speed-up
    if not (folder / EXPORT_INFO).is_file():
        seconds = torch_s * len(rows) / sum(len(b["input_ids"]) for b in batches)
        if seconds < WORTH_SECONDS:
            return Labeller(
                f"PyTorch teacher: {len(rows):,} rows take it ~{seconds:.0f} s here, less than the "
                f"{WORTH_SECONDS:.0f} s an export must save to pay for itself"
            )
        if dry_run:
            return Labeller(
                "the teacher's fastest export (int8 where it keeps the dev metric) is built and checked first, "
                "then labels the rows; the estimate is PyTorch's",
                export=str(folder),
                pending=True,
            )
        try:
            _export(teacher_path, folder, data)
        except AlembertError as exc:
            return Labeller(f"PyTorch teacher: its export was refused ({exc})")
    info = json.loads((folder / EXPORT_INFO).read_text())
    import torch

    from alembert.runtimes import load_any

    model = load_any(folder, threads=torch.get_num_threads())
    speedup = torch_s / _seconds(model, batches)
    picked = info.get("variant", "fp32")
    auto = info.get("auto") or {}
    dev = (auto.get("candidates") or {}).get(picked, {}).get("dev")
    scored = f", dev {dev:.4f} vs PyTorch {auto['source_dev']:.4f}" if dev is not None and "source_dev" in auto else ""
    if speedup < 1.0:
        return Labeller(
            f"PyTorch teacher: its {picked} export ran {speedup:.2f}x PyTorch's speed "
            f"on {SAMPLE_ROWS} of the rows here",
            variant=picked,
            speedup=round(speedup, 2),
            export=str(folder),
        )
    return Labeller(
        f"{picked} export of the teacher ({info.get('format')}{scored}), {speedup:.2f}x the PyTorch teacher's "
        f"speed on {SAMPLE_ROWS} of the rows here",
        model=model,
        variant=picked,
        speedup=round(speedup, 2),
        export=str(folder),
    )


def _export(teacher_path: str, folder: Path, data: dict) -> None:
    from alembert.export.auto import default_candidates
    from alembert.export.classifier import export_classifier_onnx
    from alembert.machine import cpu_facts
    from alembert.models.resolve import resolve_model

    here = set(default_candidates(cpu_facts()))
    candidates = [c for c in CANDIDATES if c in here]
    folder.parent.mkdir(parents=True, exist_ok=True)
    export_classifier_onnx(
        resolve_model(teacher_path), folder, quantize="auto", overwrite=True, data=data, candidates=candidates
    )


def _sample_batches(rows, tokenizer) -> list[dict]:
    """:data:`SAMPLE_ROWS` rows spread over the set, in length-sorted batches of 32 as the cache runs them."""
    from alembert.data.batching import eval_batches

    step = max(1, len(rows) // SAMPLE_ROWS)
    sample = rows.select(range(0, len(rows), step)[:SAMPLE_ROWS])
    return [{k: v for k, v in b.items() if k not in ("labels", "idx")} for _, b in eval_batches(sample, tokenizer, 32)]


def _seconds(net, batches, passes: int = 2, autocast=None) -> float:
    """Best of ``passes`` timed passes of ``net`` over ``batches``, after one warm-up pass; a torch module
    under ``autocast`` (a dtype, or None for full precision)."""
    import torch

    module = isinstance(net, torch.nn.Module)
    if module:
        net.eval()
    best = float("inf")
    with torch.inference_mode(), torch.autocast("cpu", dtype=autocast, enabled=module and autocast is not None):
        for rep in range(passes + 1):
            t = time.perf_counter()
            for b in batches:
                net(**b)
            if rep:
                best = min(best, time.perf_counter() - t)
    return best
