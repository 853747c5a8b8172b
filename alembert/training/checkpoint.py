"""Checkpoints that a kill cannot corrupt, and finding the newest one to resume from.

A checkpoint is a folder ``<run>/checkpoints/stage<S>-step<N>`` holding Accelerate's
full training state (trained modules, optimiser, scheduler, RNG states) plus
``alembert_state.json`` (stage, step, epoch, position in the epoch, best metric).
It is written under a temporary name and renamed into place when complete, so
resume never sees a half-written one; the oldest beyond ``keep`` are removed.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alembert.errors import AlembertError

STATE_FILE = "alembert_state.json"
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


def save_checkpoint(accelerator, run_dir: str | Path, state: LoopState, keep: int) -> Path:
    root = checkpoints_dir(run_dir)
    name = f"stage{state.stage}-step{state.step:07d}"
    final, tmp = root / name, root / f".tmp-{name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state)))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are ignored)."""
    root = checkpoints_dir(run_dir)
    found = [(int(m[1]), int(m[2]), p) for p in root.glob("stage*-step*") if (m := _NAME.match(p.name))]
    return [p for *_, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> tuple[Path, LoopState]:
    """The newest complete checkpoint and its loop state; a one-line error if none or corrupt."""
    found = list_checkpoints(run_dir)
    if not found:
        raise AlembertError(f"--resume: no checkpoint in {checkpoints_dir(run_dir)}; start without --resume (and set --save-every to write checkpoints)")
    path = found[-1]
    try:
        state = LoopState(**json.loads((path / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise AlembertError(f"--resume: checkpoint {path} is corrupt ({type(exc).__name__}); delete it to resume from the previous one") from None
    if not any(path.glob("model*.safetensors")) and not any(path.glob("pytorch_model*.bin")):
        raise AlembertError(f"--resume: checkpoint {path} has no model weights; delete it to resume from the previous one")
    return path, state
