"""The staged folder every export is written through: ``out_dir`` is either complete or as it was.

An export is built in a temporary folder on the same file system (a hidden sibling of a new
``out_dir``, or inside an existing one), then moved into place: a new ``out_dir`` appears complete
at once (one rename); an existing one (``--overwrite``) gets the export's own files one by one, the
record last, and loses the previous export's files that this one did not write; nothing else in it
is touched, a PyTorch model least of all. The file promises underneath (locks, temp-folder sweeps,
disk-full guard, permissions) are :mod:`alembert.files`'.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from alembert.errors import AlembertError
from alembert.files import usual_permissions
from alembert.runtimes.base import EXPORT_INFO  # the export record; its "format" names the runtime

# What an export writes, and so all that --overwrite may replace or remove in --output.
EXPORT_OWNED = {
    "model.onnx",
    "model.onnx.data",
    "config.json",
    EXPORT_INFO,
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    # sentence-embedding exports keep their sentence-transformers module description
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "README.md",
}
EXPORT_OWNED_DIRS = ("_Pooling", "_Dense", "_Normalize")  # N_Pooling/, N_Dense/, N_Normalize/
TORCH_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def check_output(out_dir: Path, src: Path | None, overwrite: bool) -> None:
    """Refuse, before any compute, an output that is a file, cannot be written, is in use, is
    not empty (without --overwrite), or holds a PyTorch model (never replaced by an export)."""
    from alembert.files import check_writable, lock_output

    if out_dir.exists() and not out_dir.is_dir():
        raise AlembertError(f"output {out_dir} is a file; pass a folder to --output")
    check_writable(out_dir)
    if not out_dir.is_dir():
        return
    lock_output(out_dir)
    if any(out_dir.iterdir()) and not overwrite:
        raise AlembertError(
            f"output {out_dir} exists and is not empty; pass --overwrite to replace it or choose another --output"
        )
    torch_files = [f for f in TORCH_WEIGHTS if (out_dir / f).exists()]
    if torch_files or (src is not None and src.resolve() == out_dir.resolve()):
        raise AlembertError(
            f"output {out_dir} holds a PyTorch model ({', '.join(torch_files) or 'the source'}); an export never "
            "replaces one: choose another --output"
        )


def move_into_place(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    """A new ``out_dir``: rename ``tmp`` to it (the folder appears complete at once). An existing
    one: move the export's files in one by one (model.onnx and the export record last), then
    remove the previous export's files that this one did not write. Nothing else is touched."""
    if not out_dir.exists():
        try:
            os.rename(tmp, out_dir)
            return
        except OSError:  # created meanwhile (another export): treat it as existing
            check_output(out_dir, None, overwrite)
    info = out_dir / EXPORT_INFO
    try:
        previous = set(json.loads(info.read_text()).get("files", [])) if info.is_file() else set()
    except (OSError, ValueError):
        previous = set()
    new = {f.name for f in tmp.iterdir()}
    for f in sorted(tmp.iterdir(), key=lambda p: (p.name == EXPORT_INFO, p.name == "model.onnx")):
        if f.is_dir() and f.name.endswith(EXPORT_OWNED_DIRS):  # a module folder replaces its old copy whole
            shutil.rmtree(out_dir / f.name, ignore_errors=True)
        os.replace(f, out_dir / f.name)
    for name in (previous & EXPORT_OWNED) - new:
        (out_dir / name).unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(out_dir: Path, overwrite: bool, nbytes: int = 0):
    """A temporary folder to write an export into (a hidden sibling of a new ``out_dir``, or inside
    an existing one: same file system, so moves are renames), moved into place by
    :func:`move_into_place` when the block ends without an error and deleted otherwise: ``out_dir``
    is either complete or as it was. Folders of killed exports are swept first; a full disk is one line."""
    from alembert.files import disk_guard, make_temp_dir, sweep_stale_temps

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    home = out_dir if out_dir.is_dir() else out_dir.parent
    sweep_stale_temps(home)
    tmp = make_temp_dir(home)
    try:
        with disk_guard(out_dir, nbytes, cleanup=[tmp], kept=f"{out_dir} is as it was"):
            yield tmp
            usual_permissions(tmp)
            move_into_place(tmp, out_dir, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
