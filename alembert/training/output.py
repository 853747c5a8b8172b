"""Output folders that never lose or half-write what is already there.

Every file is written to a temporary name in the same folder and moved into place
with ``os.replace`` (atomic on POSIX), so a killed run leaves either the old file
or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from alembert.errors import AlembertError

MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "model.onnx")


def holds_model(path: Path) -> bool:
    return any((path / f).exists() for f in MODEL_FILES)


def prepare_output_dir(path: str | Path, overwrite: bool, resume: bool = False) -> Path:
    """Check the output folder before any compute; create it if needed.

    A folder that already holds a model needs ``overwrite`` (or ``resume``: the
    run continues there from its newest checkpoint)."""
    path = Path(path)
    if resume and not path.is_dir():
        raise AlembertError(f"--resume: output directory {path} does not exist; pass the --output of the run to resume")
    if path.exists() and not path.is_dir():
        raise AlembertError(f"output {path} is a file; pass a directory to --output")
    if path.is_dir() and holds_model(path) and not (overwrite or resume):
        raise AlembertError(f"output directory {path} already holds a model; pass --overwrite to replace it or choose another --output")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; outputs are ordinary readable files
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_folder_atomic(out_dir: str | Path, write) -> None:
    """``write(tmp)`` fills a temp folder beside the outputs; then each entry is moved into
    ``out_dir`` (a sub-folder replaces its old copy whole), ``config.json`` last: it marks a
    complete model, so a killed save leaves the previous model loadable."""
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".saving-"))
    try:
        write(tmp)
        for f in sorted(tmp.iterdir(), key=lambda p: p.name == "config.json"):
            target = out_dir / f.name
            if f.is_dir():
                old = out_dir / f".old-{f.name}"
                shutil.rmtree(old, ignore_errors=True)
                if target.exists():
                    os.replace(target, old)
                os.replace(f, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(f, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_model_atomic(model, tokenizer, out_dir: str | Path) -> None:
    """``save_pretrained`` (safetensors) + tokenizer, through :func:`save_folder_atomic`."""
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

    save_folder_atomic(out_dir, write)
