"""Issue 20: faults, full disks and hostile folders. Every fault is a one-line error (or, where
the run can go on, a note), and nothing of the user's is ever lost or mixed.

ONE table drives the single-command cases: each row builds its fault in a fresh folder, names
the command, the exit code, the words of the one-line error (or of the output for a success),
and which folder must come out byte for byte as it was. A new command gets its bad-input
cases by adding rows to ``CASES``. Scenarios of several commands (kill then resume, two
concurrent runs, a full disk part-way through a run) follow the table as plain tests.

Faults are made for real where the machine allows: ``os.truncate`` for damaged files, a
tmpfs mount (size-limited, or read-only) for full and read-only disks, two processes for the
lock. Tests run as root, so permission bits cannot make a folder read-only: a path under a
regular file and a read-only mount are used instead; the mount cases skip, saying so, where
mounting is not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_cli

from alembert.files import STAGING

pytestmark = pytest.mark.cli

REPO = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).parent / "helpers"


# ------------------------------------------------------------------ helpers


def snapshot(folder: Path, ignore: tuple[str, ...] = ()) -> dict:
    """Every file and folder under ``folder``: relative path -> bytes (None for a folder)."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if not any(rel == i or rel.startswith(i + "/") for i in ignore):
            out[rel] = p.read_bytes() if p.is_file() else None
    return out


def training_file(path: Path, n: int = 32) -> Path:
    path.write_text(
        "sentence\tlabel\n" + "".join(f"text number {i} is {'good' if i % 2 else 'bad'}\t{i % 2}\n" for i in range(n))
    )
    return path


def finetune_args(model, out, train, *extra):
    return [
        "finetune",
        "--model",
        model,
        "--task",
        "sst2",
        "--train-file",
        train,
        "--max-eval-samples",
        8,
        "--batch-size",
        8,
        "--epochs",
        1,
        "--output",
        out,
        *extra,
    ]


def mount_tmpfs(path: Path, size: str, *opts: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *opts]), "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): needs root and mount permission")


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_bert) -> Path:
    """A completed finetune run: model, log, config, metrics and two checkpoints (steps 2 and 4)."""
    root = tmp_path_factory.mktemp("finished")
    train = training_file(root / "train.tsv")
    out = root / "run"
    from alembert.cli.main import main

    assert main([str(a) for a in finetune_args(tiny_bert, out, train, "--save-every", 2, "--lr", 1e-3)]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["stage0-step0000002", "stage0-step0000004"]
    return out


class Ctx:
    """What a row's set-up may use: a fresh folder and the shared tiny models."""

    def __init__(self, tmp: Path, tiny_bert: Path, tiny_teacher: Path, finished_run: Path, request):
        self.tmp, self.tiny_bert, self.tiny_teacher, self._finished, self.request = (
            tmp,
            tiny_bert,
            tiny_teacher,
            finished_run,
            request,
        )
        self.train = training_file(tmp / "train.tsv")

    def run_copy(self, name: str = "run") -> Path:
        dst = self.tmp / name
        shutil.copytree(self._finished, dst)
        return dst

    def model_copy(self, name: str = "model", src: Path | None = None) -> Path:
        dst = self.tmp / name
        shutil.copytree(src or self.tiny_teacher, dst)
        return dst

    def remote_code_model(self) -> Path:
        """A folder whose config.json asks for custom code; running it would create RAN."""
        m = self.model_copy("remote")
        cfg = json.loads((m / "config.json").read_text())
        cfg.update(
            model_type="evilbert",
            auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"},
        )
        (m / "config.json").write_text(json.dumps(cfg))
        (m / "evil.py").write_text(f"import pathlib\npathlib.Path({str(self.tmp / 'RAN')!r}).touch()\n")
        return m

    def hold_lock(self, folder: Path) -> None:
        """Another process holds the output folder's lock for the rest of the test."""
        code = (
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "locked"
        self.request.addfinalizer(lambda: (proc.kill(), proc.wait()))

    def tmpfs(self, name: str, size: str, *opts: str) -> Path:
        path = self.tmp / name
        mount_tmpfs(path, size, *opts)
        self.request.addfinalizer(lambda: umount(path))
        return path


@dataclass
class Case:
    """One fault: ``setup(ctx)`` builds it and returns the argv; ``watch(ctx)`` the folder that must
    come out byte for byte as it was (None when it must not exist afterwards either)."""

    id: str
    setup: Callable[[Ctx], list]
    code: int = 2
    words: tuple[str, ...] = ()  # in the one-line error (code 2) or in stdout+stderr (code 0)
    watch: Callable[[Ctx], Path] = field(default=lambda c: c.tmp / "out")
    ignore: tuple[str, ...] = ()  # entries of the watched folder that a row allows to change
    check: Callable[[Ctx], None] | None = None  # anything else to assert afterwards


def _export_into_parent(c: Ctx) -> list:
    runs = c.tmp / "runs"
    runs.mkdir()
    c.model_copy("runs/student")
    (runs / "other_run").mkdir()
    (runs / "other_run" / "results.txt").write_text("an unrelated experiment\n")
    return ["export", runs / "student", "--onnx", "--overwrite", "--output", runs]


def _export_into_dot(c: Ctx) -> list:
    runs = c.tmp / "runs"
    runs.mkdir()
    c.model_copy("runs/student")
    (runs / "notes.txt").write_text("mine\n")
    c.request.getfixturevalue("monkeypatch").chdir(runs)
    return ["export", "student", "--onnx", "--overwrite", "--output", "."]


def _exported(c: Ctx) -> None:
    runs = c.tmp / "runs"
    assert (runs / "model.onnx").is_file() and (runs / "alembert_export.json").is_file()
    assert not [p for p in runs.iterdir() if p.name.startswith(".alembert")], "a temp folder was left"


def _damaged_weights(c: Ctx) -> Path:
    m = c.model_copy("damaged")
    truncate_half(m / "model.safetensors")
    return m


def _damage_checkpoint(c: Ctx, which: list[int], file: str, how: str = "truncate") -> Path:
    run = c.run_copy("out")
    ckpts = sorted((run / "checkpoints").iterdir())
    for i in which:
        f = ckpts[i] / file
        if how == "truncate":
            truncate_half(f)
        else:  # a pickle of something other than tensors
            import torch

            torch.save({"state": {0: {"exp_avg": object.__new__(Ctx)}}}, f)
    return run


def _resume(c: Ctx, run: Path) -> list:
    return [*finetune_args(c.tiny_bert, run, c.train, "--save-every", 2, "--lr", 1e-3), "--resume"]


def _read_only_output(c: Ctx) -> Path:
    return c.tmpfs("ro", "1m", "ro") / "out"


def _csv(c: Ctx, text: str, name: str = "train.csv") -> Path:
    f = c.tmp / name
    f.write_text(text)
    return f


CASES = [
    # 1, 12: export --overwrite replaces the export's own files only
    Case(
        "export-overwrite-into-parent",
        _export_into_parent,
        code=0,
        words=("exported",),
        watch=lambda c: c.tmp / "runs",
        ignore=(
            "model.onnx",
            "config.json",
            "alembert_export.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "special_tokens_map.json",
            "README.md",
        ),
        check=_exported,
    ),
    Case(
        "export-overwrite-dot",
        _export_into_dot,
        code=0,
        words=("exported",),
        watch=lambda c: c.tmp / "runs",
        ignore=(
            "model.onnx",
            "config.json",
            "alembert_export.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "special_tokens_map.json",
            "README.md",
        ),
        check=_exported,
    ),
    Case(
        "export-overwrite-onto-a-pytorch-model",
        lambda c: ["export", c.model_copy("out"), "--onnx", "--overwrite", "--output", c.tmp / "out"],
        words=("holds a PyTorch model", "choose another --output"),
    ),
    # 2: a failed --overwrite run leaves the previous run as it was
    Case(
        "overwrite-then-nan",
        lambda c: finetune_args(c.tiny_bert, c.run_copy("out"), c.train, "--overwrite", "--lr", 1e30),
        words=("loss became",),
        ignore=(STAGING,),
    ),
    # 3: a fresh run never mixes with an earlier run's checkpoints
    Case(
        "checkpoints-of-an-earlier-run",
        lambda c: finetune_args(c.tiny_bert, _without_model(c.run_copy("out")), c.train, "--save-every", 2),
        words=("holds checkpoints of an earlier run", "--resume", "--overwrite"),
    ),
    # 4: one run per output folder
    Case(
        "output-in-use",
        lambda c: (c.hold_lock(c.run_copy("out")), finetune_args(c.tiny_bert, c.tmp / "out", c.train, "--overwrite"))[
            1
        ],
        words=("in use by another alembert run",),
    ),
    # 5: an unbalanced quote in a CSV
    Case(
        "csv-unbalanced-quote",
        lambda c: finetune_args(
            c.tiny_bert,
            c.tmp / "out",
            _csv(c, 'sentence,label\n"a good film,1\n' + "".join(f"text {i},{i % 2}\n" for i in range(62))),
        ),
        words=("train.csv", "line 2", "unbalanced double quote"),
    ),
    # 6: --max-length longer than the model's position table (the tiny models have 256)
    Case(
        "max-length-beyond-the-model",
        lambda c: finetune_args(c.tiny_bert, c.tmp / "out", c.train, "--max-length", 1024),
        words=("--max-length 1024", "256"),
    ),
    Case(
        "evaluate-max-length",
        lambda c: [
            "evaluate",
            c.tiny_teacher,
            "--task",
            "sst2",
            "--max-eval-samples",
            8,
            "--max-length",
            1024,
            "--output",
            c.tmp / "out",
        ],
        words=("--max-length 1024", "256"),
    ),
    Case(
        "predict-long-text-is-truncated",
        lambda c: ["predict", c.tiny_teacher, "word " * 600],
        code=0,
        words=("label:",),
    ),
    # 7: a truncated model.safetensors, in every command that loads one
    Case(
        "damaged-weights-finetune",
        lambda c: finetune_args(_damaged_weights(c), c.tmp / "out", c.train),
        words=("damaged", "truncated"),
    ),
    Case(
        "damaged-weights-distill",
        lambda c: [
            "distill",
            "--transfer",
            "none",
            "--teacher",
            _damaged_weights(c),
            "--task",
            "sst2",
            "--recipe",
            "kd",
            "--train-file",
            c.train,
            "--max-eval-samples",
            8,
            "--output",
            c.tmp / "out",
        ],
        words=("damaged", "truncated"),
    ),
    Case(
        "damaged-weights-evaluate",
        lambda c: [
            "evaluate",
            _damaged_weights(c),
            "--task",
            "sst2",
            "--max-eval-samples",
            8,
            "--output",
            c.tmp / "out",
        ],
        words=("damaged",),
    ),
    Case("damaged-weights-predict", lambda c: ["predict", _damaged_weights(c), "a film"], words=("damaged",)),
    Case(
        "damaged-weights-export",
        lambda c: ["export", _damaged_weights(c), "--onnx", "--output", c.tmp / "out"],
        words=("damaged",),
    ),
    # 8: an output that cannot be created or written, refused before any compute
    # (damaged weights as the model: the output's error, not theirs, shows that no model was loaded first)
    Case(
        "output-under-a-file",
        lambda c: (
            (c.tmp / "afile").write_text("x"),
            finetune_args(_damaged_weights(c), c.tmp / "afile" / "out", c.train),
        )[1],
        words=("afile", "is a file"),
        watch=lambda c: c.tmp / "afile" / "out",
    ),
    Case(
        "distill-output-under-a-file",
        lambda c: (
            (c.tmp / "afile").write_text("x"),
            [
                "distill",
                "--transfer",
                "none",
                "--teacher",
                _damaged_weights(c),
                "--task",
                "sst2",
                "--output",
                c.tmp / "afile" / "o",
            ],
        )[1],
        words=("afile", "is a file"),
        watch=lambda c: c.tmp / "afile" / "o",
    ),
    Case(
        "output-on-read-only-disk",
        lambda c: finetune_args(c.tiny_bert, _read_only_output(c), c.train),
        words=("cannot write", "Read-only"),
        watch=lambda c: c.tmp / "ro" / "out",
    ),
    Case(
        "output-in-proc",
        lambda c: finetune_args(c.tiny_bert, "/proc/alembert-out", c.train),
        words=("/proc/alembert-out", "cannot"),
        watch=lambda c: Path("/proc/alembert-out"),
    ),
    Case(
        "export-output-under-a-file",
        lambda c: (
            (c.tmp / "afile").write_text("x"),
            ["export", c.tiny_teacher, "--onnx", "--output", c.tmp / "afile" / "o"],
        )[1],
        words=("is a file",),
        watch=lambda c: c.tmp / "afile" / "o",
    ),
    # 10: resume from a damaged checkpoint: fall back to the previous complete one, or refuse naming it
    Case(
        "resume-truncated-optimizer-falls-back",
        lambda c: _resume(c, _damage_checkpoint(c, [-1], "optimizer.bin")),
        code=0,
        words=("stage0-step0000004 is damaged", "optimizer.bin", "resuming from stage0-step0000002"),
        watch=lambda c: c.tmp / "none",
    ),
    Case(
        "resume-all-optimizers-truncated",
        lambda c: _resume(c, _damage_checkpoint(c, [0, 1], "optimizer.bin")),
        words=("corrupt", "stage0-step0000004", "optimizer.bin", "delete it"),
    ),
    Case(
        "resume-truncated-checkpoint-weights",
        lambda c: _resume(c, _damage_checkpoint(c, [0, 1], "model.safetensors")),
        words=("corrupt", "model.safetensors"),
    ),
    Case(
        "resume-non-tensor-pickle",
        lambda c: _resume(c, _damage_checkpoint(c, [0, 1], "optimizer.bin", how="pickle")),
        words=("corrupt", "optimizer.bin", "UnpicklingError"),
    ),
    Case(
        "resume-unreadable-rng-state",
        lambda c: _resume(c, _damage_checkpoint(c, [0, 1], "random_states_0.pkl")),
        words=("corrupt", "random_states_0.pkl"),
    ),
    # 11: --set values that are not YAML, or unsafe YAML
    Case(
        "set-not-yaml",
        lambda c: finetune_args(c.tiny_bert, c.tmp / "out", c.train, "--set", "data.task=[sst2"),
        words=("--set", "not valid YAML"),
    ),
    Case(
        "set-python-tag",
        lambda c: finetune_args(
            c.tiny_bert, c.tmp / "out", c.train, "--set", "data.task=!!python/object/apply:os.getcwd []"
        ),
        words=("--set", "not valid YAML"),
    ),
    # 13: remote code never runs and is never prompted for
    *[
        Case(
            f"remote-code-{cmd}",
            (lambda make: lambda c: make(c, c.remote_code_model()))(argv),
            words=("custom code", "never runs"),
            check=lambda c: not (c.tmp / "RAN").exists() or pytest.fail("remote code ran"),
        )
        for cmd, argv in {
            "evaluate": lambda c, m: ["evaluate", m, "--task", "sst2", "--output", c.tmp / "out"],
            "finetune": lambda c, m: finetune_args(m, c.tmp / "out", c.train),
            "distill": lambda c, m: [
                "distill",
                "--transfer",
                "none",
                "--teacher",
                m,
                "--task",
                "sst2",
                "--train-file",
                c.train,
                "--output",
                c.tmp / "out",
            ],
            "predict": lambda c, m: ["predict", m, "text"],
            "export": lambda c, m: ["export", m, "--onnx", "--output", c.tmp / "out"],
        }.items()
    ],
    # 14: evaluate --output that cannot be written
    Case(
        "evaluate-output-under-a-file",
        lambda c: (
            (c.tmp / "afile").write_text("x"),
            ["evaluate", c.tiny_teacher, "--task", "sst2", "--output", c.tmp / "afile" / "o"],
        )[1],
        words=("afile", "is a file"),
        watch=lambda c: c.tmp / "afile" / "o",
    ),
    Case(
        "evaluate-output-read-only",
        lambda c: ["evaluate", c.tiny_teacher, "--task", "sst2", "--output", _read_only_output(c)],
        words=("cannot write",),
        watch=lambda c: c.tmp / "ro" / "out",
    ),
    # 15b: --pair must be two by two
    Case(
        "predict-pair-odd",
        lambda c: ["predict", c.tiny_teacher, "a", "b", "c", "--pair"],
        words=("--pair", "two by two"),
    ),
    # 16: clearer column messages; also noted: a duplicated column name is refused
    Case(
        "missing-column-listed-once",
        lambda c: finetune_args(c.tiny_bert, c.tmp / "out", _csv(c, "review,label\ngood,1\n")),
        words=("column 'sentence' or 'text' or 'sentence1' not found",),
    ),
    Case(
        "tab-separated-csv",
        lambda c: finetune_args(c.tiny_bert, c.tmp / "out", _csv(c, "sentence\tlabel\ngood\t1\n")),
        words=("looks tab-separated", ".tsv"),
    ),
    Case(
        "duplicate-column",
        lambda c: finetune_args(c.tiny_bert, c.tmp / "out", _csv(c, "sentence,label,sentence\na,1,b\n")),
        words=("'sentence' appears twice",),
    ),
    Case(  # your own data with no --dev-file: the fix is --dev-file, not GLUE's --data-dir
        "own-data-without-dev-file",
        lambda c: [
            "finetune",
            "--model",
            c.tiny_bert,
            "--train-file",
            _csv(c, "sentence,label\ngood,1\nbad,0\n"),
            "--output",
            c.tmp / "out",
        ],
        words=("no dev file", "--dev-file"),
    ),
    # issue 32, huge and odd inputs
    Case(  # a legitimate field over csv's default 131,072 characters is read, not called malformed
        "csv-field-over-131072-characters",
        lambda c: finetune_args(c.tiny_bert, c.tmp / "out", _csv(c, _long_field_csv(), "long.csv"), "--max-length", 16),
        code=0,
        words=("saved to",),
        watch=lambda c: c.tmp / "nothing",
    ),
    Case(  # a TSV named .csv whose texts hold commas: the row count error carries the hint
        "tab-separated-csv-with-commas",
        lambda c: finetune_args(
            c.tiny_bert, c.tmp / "out", _csv(c, "sentence\tlabel\ngood, fine\t1\nbad, awful, dull\t0\n")
        ),
        words=("looks tab-separated", ".tsv"),
    ),
    Case(
        "corpus-of-nul-bytes",
        lambda c: _general_args(c, _nul_corpus(c), "tinybert-general"),
        words=("NUL bytes", "binary"),
    ),
    Case(
        "corpus-of-nul-bytes-embedding-recipe",
        lambda c: [*_general_args(c, _nul_corpus(c), "embed-mse"), "--pooling", "mean"],
        words=("NUL bytes", "binary"),
    ),
    Case(  # the SQuAD file named by ALEMBERT_SQUAD is missing: the message names the variable
        "squad-variable-points-nowhere",
        lambda c: (
            c.request.getfixturevalue("monkeypatch").setenv("ALEMBERT_SQUAD", str(c.tmp / "nowhere.json")),
            ["evaluate", c.tiny_bert, "--pooling", "mean", "--task", "squad-retrieval"],
        )[1],
        words=("ALEMBERT_SQUAD points there", "unset it"),
    ),
    Case(  # a class name holding a comma: --labels as a JSON list
        "labels-json-list-with-a-comma",
        lambda c: _comma_label_args(c, '["bad, really", "good"]'),
        code=0,
        words=("saved to",),
        watch=lambda c: c.tmp / "nothing",
    ),
    Case(  # the same labels given with commas: the error says why and how
        "labels-comma-names-explained",
        lambda c: _comma_label_args(c, "bad, really,good"),
        words=("unknown label 'bad, really'", "JSON list"),
    ),
]


def _long_field_csv() -> str:
    """32 rows of sentence,label, one sentence 200,000 characters long (csv's default limit is 131,072)."""
    rows = [f"text number {i},{i % 2}" for i in range(32)]
    rows[3] = "word " * 40_000 + ",1"
    return "sentence,label\n" + "\n".join(rows) + "\n"


def _nul_corpus(c: Ctx) -> Path:
    f = c.tmp / "corpus.txt"
    f.write_bytes(b"\x00" * 4096)
    return f


def _general_args(c: Ctx, corpus: Path, recipe: str) -> list:
    return [
        "distill-general",
        "--teacher",
        c.tiny_bert,
        "--corpus",
        corpus,
        "--recipe",
        recipe,
        "--output",
        c.tmp / "out",
    ]


def _comma_label_args(c: Ctx, labels: str) -> list:
    """finetune on a file whose class names are 'bad, really' and 'good', with ``--labels labels``."""
    rows = "".join(f"text number {i}\t{'good' if i % 2 else 'bad, really'}\n" for i in range(32))
    f = c.tmp / "commas.tsv"
    f.write_text("sentence\tlabel\n" + rows)
    return [
        *["finetune", "--model", c.tiny_bert, "--train-file", f, "--dev-file", f, "--labels", labels],
        *["--max-length", 16, "--batch-size", 8, "--epochs", 1, "--output", c.tmp / "out"],
    ]


def _without_model(run: Path) -> Path:
    """What a run killed before its first evaluation leaves: checkpoints but no model."""
    for f in run.iterdir():
        if f.name != "checkpoints":
            shutil.rmtree(f) if f.is_dir() else f.unlink()
    return run


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, tmp_path, tiny_bert, tiny_teacher, finished_run, request, capsys):
    ctx = Ctx(tmp_path, tiny_bert, tiny_teacher, finished_run, request)
    argv = case.setup(ctx)
    watched = case.watch(ctx)
    existed = watched.exists()
    before = snapshot(watched, case.ignore)
    capsys.readouterr()
    code, out, err = run_cli(argv, capsys)
    assert code == case.code, f"exit {code}, expected {case.code}\n{out}\n{err}"
    assert "Traceback" not in err
    if case.code == 2:
        lines = [
            ln for ln in err.strip().splitlines() if not ln.startswith(("training:", "note: "))
        ]  # a progress bar or a note on what was inferred may precede it
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        text = lines[0]
    else:
        text = out + err
    for word in case.words:
        assert word in text, text
    if not existed:
        assert not watched.exists(), f"{watched} was created"
    else:
        after = snapshot(watched, case.ignore)
        assert after.keys() == before.keys(), (
            f"entries changed: +{set(after) - set(before)} -{set(before) - set(after)}"
        )
        assert after == before, f"files changed: {[k for k in after if after[k] != before[k]]}"
    if case.check:
        case.check(ctx)


# --------------------------------------------------------- scenarios of several commands


def test_overwrite_replaces_only_its_own_files_and_drops_old_checkpoints(tiny_bert, finished_run, tmp_path, capsys):
    """Items 2 and 3: --overwrite with a shorter run: afterwards only the new run's checkpoints, log
    and config are there (no old higher-numbered checkpoint survives to be resumed), and the
    user's own file is untouched."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "notes.txt").write_text("my notes\n")
    train = training_file(tmp_path / "train.tsv", n=16)
    code, _, err = run_cli(
        finetune_args(
            tiny_bert, run, train, "--overwrite", "--save-every", 1, "--max-steps", 1, "--keep-checkpoints", 1
        ),
        capsys,
    )
    assert code == 0, err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["stage0-step0000001"]
    assert json.loads((run / "metrics.json").read_text())["steps"] == 1
    assert (run / "notes.txt").read_text() == "my notes\n"
    assert not (run / STAGING).exists()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(r.get("step", 0) for r in log) == 1  # the new run's log only
    code, _, err = run_cli(
        [*finetune_args(tiny_bert, run, train, "--save-every", 1, "--max-steps", 1), "--resume"], capsys
    )
    assert code == 0 and json.loads((run / "metrics.json").read_text())["steps"] == 1, err


def test_killed_overwrite_keeps_the_previous_run_then_resumes(tiny_bert, finished_run, tmp_path, capsys):
    """Item 2 (kill): an --overwrite run SIGKILLed mid-way leaves the previous run byte for byte;
    --resume then continues the interrupted new run and its files replace the old ones."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    train = training_file(tmp_path / "train.tsv", n=48)
    argv = [str(a) for a in finetune_args(tiny_bert, run, train, "--overwrite", "--save-every", 2, "--lr", 1e-3)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "slow_save.py"), "2", "60", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    for line in proc.stdout:
        if "PAUSED" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshot(run, ignore=(STAGING,)) == before
    code, _, err = run_cli(
        [*(a for a in argv if a != "--overwrite"), "--resume"], capsys
    )  # same command, --resume for --overwrite
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text())["steps"] == 6  # 48 examples / batch 8, the new run
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["stage0-step0000004", "stage0-step0000006"]
    assert not (run / STAGING).exists()


def test_two_concurrent_runs_one_is_refused(tiny_bert, tmp_path):
    """Item 4: two processes started with the same --output: exactly one trains; the other stops with
    the one-line error (in use, or already holds a model when the first finished first)."""
    train = training_file(tmp_path / "train.tsv", n=64)
    out = tmp_path / "shared"
    argv = [str(a) for a in finetune_args(tiny_bert, out, train, "--lr", 1e-3)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "alembert.cli.main", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    err = next(e for c, e in results if c == 2)
    assert "in use by another alembert run" in err or "already holds a model" in err, err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_full_disk_during_a_checkpoint(tiny_bert, tmp_path, capsys):
    """Item 9: the disk fills up while the second checkpoint is written: one line naming the disk
    and the space needed, the partial checkpoint removed, the previous one intact and resumable."""
    train = training_file(tmp_path / "train.tsv", n=64)
    probe = tmp_path / "probe"
    code, _, err = run_cli(
        finetune_args(tiny_bert, probe, train, "--save-every", 4, "--max-steps", 8, "--eval-every", 100), capsys
    )
    assert code == 0, err
    ckpt = sum(f.stat().st_size for f in (probe / "checkpoints" / "stage0-step0000004").iterdir())
    model = sum(f.stat().st_size for f in probe.iterdir() if f.is_file())  # model, tokenizer, log, config
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "64m")
    try:
        room = ckpt + model + ckpt // 2  # the first checkpoint and the model fit, the second checkpoint not
        (disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(disk).free - room))
        out = disk / "run"
        code, _, err = run_cli(
            finetune_args(tiny_bert, out, train, "--save-every", 4, "--max-steps", 8, "--eval-every", 100), capsys
        )
        assert code == 2, err
        line = err.strip().splitlines()[-1]
        assert (
            line.startswith("error: no space left on the disk holding") and "MB free" in line and "needs about" in line
        ), err
        assert "stage0-step0000004 is kept" in line and "Traceback" not in err
        names = sorted(p.name for p in (out / "checkpoints").iterdir())
        assert names == ["stage0-step0000004"], names  # no .tmp-* left
        from alembert.training.checkpoint import latest_checkpoint

        assert latest_checkpoint(out)[1].step == 4  # intact: every file reads back
    finally:
        umount(disk)


def test_full_disk_during_export(tiny_teacher, tmp_path, capsys):
    """Item 9: an export onto a full disk: one line, and no temp folder left behind."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "2m")
    try:
        code, _, err = run_cli(["export", tiny_teacher, "--onnx", "--output", disk / "onnx"], capsys)
        assert code == 2 and "no space left on the disk holding" in err and "Traceback" not in err, err
        assert list(disk.iterdir()) == []
    finally:
        umount(disk)


def test_stale_temp_folders_of_killed_processes_are_swept(tmp_path):
    """Also noted: a killed export leaves a hidden temp folder; the next run there removes it
    (its process is gone), never one of a live process."""
    from alembert.files import TEMP_PREFIX, sweep_stale_temps

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{TEMP_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-def"
    stale.mkdir()
    live.mkdir()
    time.sleep(0.1)
    sweep_stale_temps(tmp_path)
    assert not stale.exists() and live.exists()


def test_all_zero_recipe_weights_are_refused(tiny_teacher, tmp_path, capsys):
    """Also noted: a recipe whose weights are all zero would train with loss 0; refused."""
    recipe = tmp_path / "zero.yaml"
    recipe.write_text(
        "name: zero\nstages:\n  - losses:\n      - {loss: kd, weight: 0}\n      - {loss: ce, weight: 0}\n"
    )
    code, _, err = run_cli(
        [
            "distill",
            "--transfer",
            "none",
            "--teacher",
            tiny_teacher,
            "--task",
            "sst2",
            "--recipe",
            recipe,
            "--output",
            tmp_path / "o",
        ],
        capsys,
    )
    assert code == 2 and "every loss weight is 0" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_a_diverged_run_says_so(tiny_bert, tmp_path, capsys):
    """Also noted: lr 10 ends with a finite but diverged loss; the run warns instead of passing silently."""
    from alembert.training.loop import divergence_note

    assert divergence_note([0.7] * 10 + [0.69] * 10) is None and divergence_note([0.7] * 5) is None
    assert "diverged" in divergence_note([0.7] * 10 + [4.0] * 10)
    train = training_file(tmp_path / "train.tsv", n=96)
    code, out, err = run_cli(finetune_args(tiny_bert, tmp_path / "out", train, "--lr", 10, "--epochs", 3), capsys)
    if code == 2:  # diverged all the way to NaN: the existing one-line error
        assert "loss became" in err
    else:
        assert "the run probably diverged" in out + err, out + err


def test_labels_that_are_not_a_json_list_are_one_argparse_line(tmp_path, capsys):
    """``--labels '[...'``: argparse's own usage error (exit 2), saying what a JSON list looks like."""
    from alembert.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["finetune", "--model", "m", "--labels", '["a", ', "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--labels" in last and "not a JSON list" in last and "Traceback" not in last
    assert not (tmp_path / "out").exists()


def test_quoted_causes_are_cut_at_a_word_not_inside_one():
    from alembert.errors import brief

    long = "the tensor model.encoder.layer.3.attention could not be read because " + "the file ends early " * 20
    got = brief(RuntimeError(long + "\nsecond line"), 80)
    assert len(got) <= 80 and got.endswith("…") and long.startswith(got[:-1]) and long[len(got) - 1] == " "
    assert brief(ValueError()) == "ValueError" and brief("short\nmore") == "short"
