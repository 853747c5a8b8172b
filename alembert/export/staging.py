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
    "openvino_model.xml",
    "openvino_model.bin",
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


def written_by_alembert(out_dir: Path, record: str) -> set[str]:
    """What the previous export in ``out_dir`` wrote, by its record: the relative paths it lists
    under ``owned`` (the web export: every file, sub-folders included), else the export's own
    top-level names under ``files`` that are :data:`EXPORT_OWNED`. A path leading outside ``out_dir``
    (a damaged or hostile record) is never taken."""
    try:
        info = json.loads((out_dir / record).read_text()) if (out_dir / record).is_file() else {}
    except (OSError, ValueError):
        return set()
    if isinstance(info.get("owned"), list):
        names = {str(p) for p in info["owned"]}
    else:
        names = {str(p) for p in info.get("files", []) if isinstance(p, str)} & EXPORT_OWNED
    root = out_dir.resolve()
    return {n for n in names if (out_dir / n).resolve().is_relative_to(root) and (out_dir / n).resolve() != root}


def move_into_place(tmp: Path, out_dir: Path, overwrite: bool, record: str = EXPORT_INFO) -> None:
    """A new ``out_dir``: rename ``tmp`` to it (the folder appears complete at once). An existing
    one: move the export's files in one by one (model.onnx and the ``record`` last; a sub-folder's
    files one by one, so a user's own files beside them stay), then remove the files the previous
    export wrote (:func:`written_by_alembert`) that this one did not. Nothing else is touched."""
    if not out_dir.exists():
        try:
            os.rename(tmp, out_dir)
            return
        except OSError:  # created meanwhile (another export): treat it as existing
            check_output(out_dir, None, overwrite)
    previous = written_by_alembert(out_dir, record)
    new = {str(f.relative_to(tmp)) for f in tmp.rglob("*") if f.is_file()} | {f.name for f in tmp.iterdir()}
    for f in sorted(tmp.iterdir(), key=lambda p: (p.name == record, p.name == "model.onnx")):
        if f.is_dir() and f.name.endswith(EXPORT_OWNED_DIRS):  # a module folder replaces its old copy whole
            shutil.rmtree(out_dir / f.name, ignore_errors=True)
            os.replace(f, out_dir / f.name)
        elif f.is_dir():  # onnx/, vendor/: merged file by file
            for g in sorted(p for p in f.rglob("*") if p.is_file()):
                dest = out_dir / g.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(g, dest)
        else:
            os.replace(f, out_dir / f.name)
    for name in sorted(previous - new, key=len, reverse=True):
        path = out_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # a folder it emptied goes too (not one holding the user's files)
                for parent in path.relative_to(out_dir).parents[:-1]:
                    (out_dir / parent).rmdir()


@contextlib.contextmanager
def staged_folder(out_dir: Path, overwrite: bool, nbytes: int = 0, record: str = EXPORT_INFO):
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
            move_into_place(tmp, out_dir, overwrite, record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
