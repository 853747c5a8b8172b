"""Issue 32: one output guard for every writer. Every command that writes is run against the same
output faults (a regular file where a folder goes, a path under a regular file, a read-only disk) and
must answer each with one line before any work, leaving nothing behind.

WRITERS is the list of commands that write; the parser test below fails when a command with an
``--output`` flag is missing from it, so a new writer gets these rows by being added here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.cli


def _texts(tmp: Path) -> Path:
    f = tmp / "corpus.txt"
    f.write_text("".join(f"This is sentence number {i} of a short corpus. It ends here.\n" for i in range(40)))
    return f


def _run(tmp: Path) -> Path:
    """A finished run folder for ``plot`` (log.jsonl with a few steps)."""
    run = tmp / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n')
    return run


# command -> argv builder (tmp folder, tiny teacher, tiny encoder, the output path)
WRITERS = {
    "finetune": lambda t, teacher, bert, out: [
        *["finetune", "--model", bert, "--task", "sst2", "--max-train-samples", 8, "--output", out],
    ],
    "distill": lambda t, teacher, bert, out: [
        *[
            "distill",
            "--transfer",
            "none",
            "--teacher",
            teacher,
            "--task",
            "sst2",
            "--max-train-samples",
            8,
            "--output",
            out,
        ],
    ],
    "distill-general": lambda t, teacher, bert, out: [
        *["distill-general", "--teacher", bert, "--corpus", _texts(t), "--output", out],
    ],
    "distill-general-embedding": lambda t, teacher, bert, out: [
        *["distill-general", "--teacher", bert, "--pooling", "mean", "--recipe", "embed-mse"],
        *["--corpus", _texts(t), "--output", out],
    ],
    "evaluate": lambda t, teacher, bert, out: [
        *["evaluate", teacher, "--task", "sst2", "--max-eval-samples", 8, "--output", out],
    ],
    "export": lambda t, teacher, bert, out: ["export", teacher, "--onnx", "--output", out],
    "export-web": lambda t, teacher, bert, out: ["export", teacher, "--web", "--output", out],
    "bench": lambda t, teacher, bert, out: [
        *["bench", teacher, "--task", "sst2", "--max-eval-samples", 8, "--output", out],
    ],
    "augment": lambda t, teacher, bert, out: [
        *["augment", "--task", "rte", "--max-train-samples", 4, "--n", 1, "--output", Path(str(out) + ".tsv")],
    ],
    "plot": lambda t, teacher, bert, out: ["plot", _run(t), "--output", out],
    "frontier": lambda t, teacher, bert, out: [
        *["frontier", "--teacher", teacher, "--task", "sst2", "--max-train-samples", 8, "--output", out],
    ],
    "adapt-mlm": lambda t, teacher, bert, out: [
        *["adapt-mlm", "--model", bert, "--corpus", _texts(t), "--max-length", 32, "--heldout", 2, "--output", out],
    ],
}

FAULTS = ("a-file", "under-a-file", "read-only")


def _output(tmp: Path, fault: str, request) -> Path:
    if fault == "a-file":
        (tmp / "taken").write_text("a regular file")
        return tmp / "taken"
    if fault == "under-a-file":
        (tmp / "afile").write_text("a regular file")
        return tmp / "afile" / "out"
    disk = tmp / "ro"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(disk)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a read-only tmpfs here ({r.stderr.decode().strip()}): needs root")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(disk)], capture_output=True))
    return disk / "out"


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.is_file() and p.read_bytes() for p in sorted(folder.rglob("*"))}


# augment's --output is a file: an existing one is not a fault but the --overwrite row of tests/test_augment.py
CASES = [(c, f) for c in sorted(WRITERS) for f in FAULTS if (c, f) != ("augment", "a-file")]


@pytest.mark.parametrize(("command", "fault"), CASES)
def test_every_writer_refuses_a_bad_output_in_one_line(
    command, fault, tmp_path, tiny_teacher, tiny_bert, capsys, request
):
    out = _output(tmp_path, fault, request)
    argv = WRITERS[command](tmp_path, tiny_teacher, tiny_bert, out)
    before = _tree(tmp_path)
    code, _, err = run_cli(argv, capsys)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("note: ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert _tree(tmp_path) == before, f"{command} changed the folder"


def test_the_writer_list_covers_every_command_with_an_output_flag():
    """A command that gains --output must be added to WRITERS (and so to the fault rows)."""
    from alembert.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    writers = {name for name, sub in commands.items() if "--output" in sub._option_string_actions}
    covered = {name.split("-embedding")[0].removesuffix("-web") for name in WRITERS}
    assert writers == covered, f"commands with --output not in WRITERS: {writers - covered}"
