"""Checkpoints that a kill cannot corrupt, and finding the newest one to resume from.

A checkpoint is a folder ``<run>/checkpoints/stage<S>-step<N>`` holding Accelerate's
full training state (trained modules, optimiser, scheduler, RNG states) plus
``alembert_state.json`` (stage, step, epoch, position in the epoch, best metric).
It is written under a temporary name and renamed into place when complete, so
resume never sees a half-written one; the oldest beyond ``keep`` are removed only after
the new one is in place (a full disk mid-save keeps the previous one and removes the
partial one). Before resuming, every file of the newest checkpoint is read back
(:func:`verify_checkpoint`): weights, optimiser, scheduler, RNG state. A damaged one is
skipped for the previous complete one, with a message; none complete is a one-line error.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alembert.errors import AlembertError, brief
from alembert.files import disk_guard, model_bytes

STATE_FILE = "alembert_state.json"
SIGNATURE_FILE = "run.json"  # the resolved config and data fingerprint of the run (training/resume.py)
_NAME = re.compile(r"^stage(\d+)-step(\d+)$")


@dataclass
class LoopState:
    stage: int = 0
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    samples: int = 0
    best: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    stage_done: bool = False


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    accelerator, run_dir: str | Path, state: LoopState, keep: int, signature: dict | None = None
) -> Path:
    """Write checkpoint ``stage<i>-step<n>`` (with ``signature``: what the run was, training/resume.py)."""
    root = checkpoints_dir(run_dir)
    name = f"stage{state.stage}-step{state.step:07d}"
    final, tmp = root / name, root / f".tmp-{name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    previous = list_checkpoints(run_dir)
    kept = f"the previous checkpoint {previous[-1].name} is kept" if previous else "no checkpoint was kept"
    need = 3 * sum(model_bytes(m) for m in accelerator._models)  # weights + AdamW's two moments
    with disk_guard(root, need, cleanup=[tmp], kept=kept):
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps(asdict(state)))
            if signature is not None:
                (tmp / SIGNATURE_FILE).write_text(json.dumps(signature))
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
    if accelerator.is_main_process:
        for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def read_signature(path: Path) -> dict | None:
    """The run signature a checkpoint was saved with (None: written before signatures existed)."""
    f = Path(path) / SIGNATURE_FILE
    return json.loads(f.read_text()) if f.is_file() else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are ignored)."""
    root = checkpoints_dir(run_dir)
    found = [(int(m[1]), int(m[2]), p) for p in root.glob("stage*-step*") if (m := _NAME.match(p.name))]
    return [p for *_, p in sorted(found)]


def verify_checkpoint(path: Path) -> LoopState:
    """Read every file of checkpoint ``path`` back as resuming would (safetensors fully, pickles with
    ``weights_only=True`` as Accelerate loads them); returns its loop state, or raises ValueError
    naming the first damaged file. Accelerate itself skips an unreadable RNG state silently."""
    from accelerate.utils.other import load
    from safetensors import safe_open

    try:
        state = LoopState(**json.loads((path / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{STATE_FILE}: {type(exc).__name__}") from None
    if not any(path.glob("model*.safetensors")) and not any(path.glob("pytorch_model*.bin")):
        raise ValueError("no model weights")
    if not any(path.glob("random_states_*.pkl")):
        raise ValueError("no RNG state (random_states_0.pkl)")
    for f in sorted(path.iterdir()):
        try:
            if f.suffix == ".safetensors":
                with safe_open(str(f), "pt") as st:
                    for key in st.keys():
                        st.get_tensor(key)
            elif f.suffix in (".bin", ".pkl"):
                load(f, map_location="cpu")
        except Exception as exc:  # torch, pickle and safetensors each raise their own types
            raise ValueError(
                f"{f.name}: {type(exc).__name__}: {brief(exc, 120) if str(exc) else 'unreadable'}"
            ) from None
    return state


def latest_checkpoint(run_dir: str | Path) -> tuple[Path, LoopState]:
    """The newest checkpoint whose every file reads back, and its loop state. A damaged newer one is
    skipped with a message naming it; none complete is a one-line error naming the newest."""
    found = list_checkpoints(run_dir)
    if not found:
        raise AlembertError(
            f"--resume: no checkpoint in {checkpoints_dir(run_dir)}; "
            "start without --resume (and set --save-every to write checkpoints)"
        )
    bad: list[tuple[Path, str]] = []
    for path in reversed(found):
        try:
            state = verify_checkpoint(path)
        except ValueError as exc:
            bad.append((path, str(exc)))
            continue
        for skipped, why in bad:
            print(
                f"note: --resume: checkpoint {skipped} is damaged ({why}); resuming from {path.name} instead",
                file=sys.stderr,
            )
        return path, state
    path, why = bad[0]
    raise AlembertError(
        f"--resume: checkpoint {path} is corrupt ({why}) and no earlier checkpoint is complete; "
        "delete it and start again without --resume"
    )
