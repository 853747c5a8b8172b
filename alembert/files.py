"""Output folders that never lose, mix or half-write what is already there.

One helper per concern, shared by every command (docs/reliability.md lists the promises):

* **atomic files**: every file is written to a temporary name in the same folder and moved
  into place with ``os.replace`` (atomic on POSIX), so a killed run leaves either the old file
  or the new one, never a torn one (:func:`write_text_atomic`, :func:`save_model_atomic`);
* **one run per folder**: :func:`prepare_output_dir` takes an exclusive ``flock`` on the output
  folder itself (no lock file is created), held until the command ends; a second run with
  the same ``--output`` is refused with a one-line error;
* **--overwrite replaces only our own files, and only at the end**: an ``--overwrite`` run
  writes into ``DIR/.alembert-staging/``; :func:`finish_output` moves its files into ``DIR`` when
  the run has succeeded, replacing the previous run's files of the same names and removing the
  previous run's ``checkpoints/`` and weight files. Until then the previous run is untouched (a
  failed or killed run never mixes the two); other files in ``DIR`` are never touched;
* **checked before any compute**: :func:`check_output_dir` refuses a path under a file or a
  location that cannot be written, before models or data are loaded;
* **full disk**: :func:`disk_guard` turns "no space left" (however torch or safetensors word it)
  into one line naming the disk, the free space and the space needed, after removing the
  partial temporary files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from alembert.errors import AlembertError

MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "model.onnx")
STAGING = ".alembert-staging"  # where an --overwrite run writes until it succeeds
TEMP_PREFIX = ".alembert-tmp-"  # temporary folders: .alembert-tmp-<pid>-<random>
# Files of a previous run that an --overwrite run removes even when it does not write them
# itself: stale weights (an old shard or a .bin next to new safetensors) and old checkpoints.
STALE_RUN_FILES = re.compile(
    r"^(checkpoints|trackers|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json"
    r"|pytorch_model(-\d+-of-\d+)?\.bin|pytorch_model\.bin\.index\.json|projections\.safetensors)$"
)
_LOCKS: dict[str, int] = {}  # realpath -> fd of the locked folder (this process's)


def is_main_process() -> bool:
    """Rank 0 of a launched job (or a single process): the one that locks and moves files."""
    return os.environ.get("RANK", "0") == "0"


def holds_model(path: Path) -> bool:
    return any((path / f).exists() for f in MODEL_FILES)


# ------------------------------------------------------------------ the folder lock


def lock_output(path: str | Path) -> None:
    """Hold an exclusive lock on folder ``path`` until :func:`release_output` or exit.

    ``flock`` on the folder's own descriptor: nothing is written into the folder, the lock
    dies with the process (a killed run never leaves a stale lock), and it is re-entrant
    within one process (a command may check, then create)."""
    key = os.path.realpath(path)
    if key in _LOCKS or not is_main_process():
        return
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AlembertError(
            f"output directory {path} is in use by another alembert run; wait for it to finish "
            "or choose another --output"
        ) from None
    _LOCKS[key] = fd


def release_output(path: str | Path | None = None) -> None:
    """Release the lock on ``path`` (all of this process's locks when None)."""
    keys = list(_LOCKS) if path is None else [os.path.realpath(path)]
    for key in keys:
        fd = _LOCKS.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


# ------------------------------------------------------- checks and the run folder


def check_writable(path: str | Path, what: str = "--output") -> None:
    """Refuse, before any compute, an output that cannot be created or written: a path under
    a regular file, a read-only file system, a system location. Probes by creating (and
    removing) a temporary file in the nearest existing folder; root ignores permission bits,
    so ``os.access`` would say yes where the write then fails."""
    path = Path(path).absolute()
    anc = path
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise AlembertError(f"{what} {path}: cannot create it, {anc} is a file, not a folder; choose another {what}")
    try:
        fd, probe = tempfile.mkstemp(dir=anc, prefix=".alembert-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AlembertError(
            f"{what} {path}: cannot write in {anc} ({exc.strerror or exc}); choose a writable {what}"
        ) from None


def check_output_folder(path: str | Path, what: str = "--output") -> Path:
    """The one check of a folder a command writes files into (bench, plot, evaluate): not a regular
    file, and creatable and writable (:func:`check_writable`); nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AlembertError(f"{what} {path} is a file; pass a folder to {what}")
    check_writable(path, what)
    return path


def check_output_file(path: str | Path, what: str = "--output") -> Path:
    """The one check of a file a command writes (augment): not a folder, and its folder creatable and
    writable; nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise AlembertError(f"{what} {path} is a folder; pass a file name")
    check_writable(path.parent, what)
    return path


def run_dir(path: str | Path, overwrite: bool, resume: bool) -> Path:
    """Where this run writes: ``path``, or its staging folder for --overwrite (and for
    --resume of an interrupted --overwrite run, whose checkpoints live there)."""
    path = Path(path)
    staging = path / STAGING
    if resume:
        return staging if (staging / "checkpoints").is_dir() else path
    return staging if overwrite else path


def check_output_dir(path: str | Path, overwrite: bool, resume: bool = False) -> Path:
    """Every check on the output folder, without creating or changing anything; locks an
    existing folder. Returns where the run will write (see :func:`run_dir`)."""
    path = Path(path)
    if resume and not path.is_dir():
        raise AlembertError(f"--resume: output directory {path} does not exist; pass the --output of the run to resume")
    if path.exists() and not path.is_dir():
        raise AlembertError(f"output {path} is a file; pass a directory to --output")
    check_writable(path)
    if path.is_dir():
        lock_output(path)
        if holds_model(path) and not (overwrite or resume):
            raise AlembertError(
                f"output directory {path} already holds a model; "
                "pass --overwrite to replace it or choose another --output"
            )
        if any(path.glob("checkpoints/stage*-step*")) and not (overwrite or resume):  # its pruning would mix two runs
            raise AlembertError(
                f"output directory {path} holds checkpoints of an earlier run; pass --resume to continue it, "
                "--overwrite to replace it, or choose another --output"
            )
    return run_dir(path, overwrite, resume)


def prepare_output_dir(path: str | Path, overwrite: bool, resume: bool = False) -> Path:
    """Check the output folder (see :func:`check_output_dir`), create and lock it; returns the
    folder the run writes into (``path`` or its staging folder for --overwrite).

    Call it once every other check has passed: a refused run leaves the folder as it was."""
    path = Path(path)
    check_output_dir(path, overwrite, resume)
    if is_main_process():
        path.mkdir(parents=True, exist_ok=True)
        lock_output(path)
        check_output_dir(path, overwrite, resume)  # again under the lock: a run that finished meanwhile
        sweep_stale_temps(path)
    out = run_dir(path, overwrite, resume)
    if out != path and not resume and is_main_process():
        shutil.rmtree(out, ignore_errors=True)  # an interrupted earlier --overwrite that the user restarts
        out.mkdir()
    return out


def finish_output(out: str | Path) -> Path:
    """The run in ``out`` has succeeded: when it is a staging folder, move its files into the
    output folder (replacing the previous run's files of the same names, removing the previous
    run's checkpoints and weight files; nothing else), then release the lock. Returns the folder."""
    out = Path(out)
    final = out.parent if out.name == STAGING else out
    if is_main_process() and out.name == STAGING and out.is_dir():
        new = {f.name for f in out.iterdir()}
        old = final / f"{TEMP_PREFIX}{os.getpid()}-previous"
        shutil.rmtree(old, ignore_errors=True)
        old.mkdir()
        for f in final.iterdir():  # set the previous run's files aside first...
            if f.name in new or STALE_RUN_FILES.match(f.name):
                os.replace(f, old / f.name)
        for f in sorted(
            out.iterdir(), key=lambda p: p.name == "config.json"
        ):  # ...then move the new ones in, config last
            os.replace(f, final / f.name)
        shutil.rmtree(old, ignore_errors=True)
        out.rmdir()
    release_output(final)
    return final


# ------------------------------------------------------------------ temporary folders


def make_temp_dir(parent: str | Path) -> Path:
    """A hidden temporary folder in ``parent`` named with this process id, so that a later
    run can tell an abandoned one (its process is gone) from one in use."""
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{TEMP_PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(parent: str | Path) -> list[Path]:
    """Remove temporary folders and files in ``parent`` left by killed alembert processes
    (``.alembert-tmp-<pid>-*`` whose process is gone; ``checkpoints/.tmp-*`` of a killed save)."""
    parent, removed = Path(parent), []
    for p in parent.glob("checkpoints/.tmp-*"):  # under the folder's lock: no other run is saving there
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    for p in parent.glob(f"{TEMP_PREFIX}*"):
        m = re.match(rf"^{re.escape(TEMP_PREFIX)}(\d+)-", p.name)
        if m and int(m[1]) != os.getpid() and not _alive(int(m[1])):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# ------------------------------------------------------------------ full disks


_DISK_FULL_WORDS = (
    "No space left",
    "unexpected pos",
    "inline_container",
    "file write failed",
    "code: 28",
    "Disk quota",
)


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left", however it reached us: an OSError (ENOSPC, EDQUOT, EFBIG), torch's
    zip writer (``[enforce fail at inline_container.cc] unexpected pos``) or safetensors' IoError."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    return not isinstance(exc, AlembertError) and any(w in str(exc) for w in _DISK_FULL_WORDS)


def disk_full_error(where: str | Path, need_bytes: int | None = None, kept: str = "") -> AlembertError:
    where = Path(where)
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = f"{shutil.disk_usage(probe).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    need = f"; this write needs about {need_bytes / 1e6:.1f} MB" if need_bytes else ""
    return AlembertError(
        f"no space left on the disk holding {where} ({free}{need}); free some space or choose "
        f"another --output{'; ' + kept if kept else ''}"
    )


@contextmanager
def disk_guard(where: str | Path, need_bytes: int | None = None, cleanup=(), kept: str = ""):
    """Run a write; on a full disk remove ``cleanup`` (partial temporary files and folders) and
    raise the one-line :func:`disk_full_error`."""
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        for p in cleanup:
            p = Path(p)
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        raise disk_full_error(where, need_bytes, kept) from None


def model_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters()) if model is not None else 0


# ------------------------------------------------------------------ atomic writers


def usual_permissions(tree: str | Path) -> None:
    """Give a file, or a folder and everything under it, the umask's usual modes: mkstemp and
    mkdtemp create owner-only entries, and outputs are ordinary files that another user (a web
    server, a colleague) must be able to read. The one permission policy of every writer."""
    mask = os.umask(0)
    os.umask(mask)
    tree = Path(tree)
    for path in [tree, *(tree.rglob("*") if tree.is_dir() else [])]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it into
    place: a reader sees the old file or the new one, never half of it; a full disk is a one-line
    error and leaves the old file as it was. The one atomic file writer."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with disk_guard(path, len(data), cleanup=[tmp]):
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            usual_permissions(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_folder_atomic(out_dir: str | Path, write, nbytes: int = 0) -> None:
    """``write(tmp)`` fills a temp folder beside the outputs; then each entry is moved into
    ``out_dir`` (a sub-folder replaces its old copy whole), ``config.json`` last: it marks a
    complete model, so a killed save leaves the previous model loadable. A full disk while
    writing (``nbytes``: about what it needs) is one line, and the temp folder is removed."""
    out_dir = Path(out_dir)
    tmp = make_temp_dir(out_dir)
    try:
        with disk_guard(out_dir, nbytes, cleanup=[tmp], kept="the previously saved model is kept"):
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

    save_folder_atomic(out_dir, write, model_bytes(model))
