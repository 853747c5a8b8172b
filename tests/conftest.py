"""Shared fixtures: tiny random models (real BERT vocabulary) and the real GLUE data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GLUE = Path(os.environ.get("ALEMBERT_DATA") or REPO.parent / "shared" / "data" / "glue_data")


@pytest.fixture(scope="session", autouse=True)
def _share_the_cores():
    """Under ``pytest -n N`` (``make test``) each worker takes its share of the cores for PyTorch, so N
    workers do not each start a thread per core and wait on one another."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["ALEMBERT_CACHE"] = str(tmp_path_factory.mktemp("alembert-cache"))
    os.environ.setdefault("ALEMBERT_DATA", str(GLUE))
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


@pytest.fixture(scope="session")
def bert_tokenizer():
    from transformers import AutoTokenizer

    from alembert.models.resolve import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))


def save_tiny(
    path: Path, tokenizer, family: str = "bert", layers: int = 4, hidden: int = 32, heads: int = 2, seed: int = 0
) -> Path:
    """A tiny random encoder of ``family`` with the BERT vocabulary, saved with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(seed)
    kw = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=256,
    )
    if family == "distilbert":
        kw = dict(
            vocab_size=len(tokenizer),
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=hidden * 2,
            max_position_embeddings=256,
        )
    config = AutoConfig.for_model(family, **kw)
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, bert_tokenizer) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-bert"), bert_tokenizer)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tiny_bert, bert_tokenizer) -> Path:
    """The tiny encoder (4 layers, width 32, 2 heads, BERT vocabulary) with an SST-2 head:
    a teacher for distillation tests."""
    from alembert.data.glue import get_task
    from alembert.models.load import load_classifier

    path = tmp_path_factory.mktemp("teacher")
    load_classifier(tiny_bert, get_task("sst2")).save_pretrained(path)
    bert_tokenizer.save_pretrained(path)
    return path


# What a test does, said by its marker (pyproject.toml has their meanings): `make test-unit` runs
# the tests with none of them. A command may train and export as it runs, so `cli` covers both.
_WATCH = pytest.StashKey()
TIERS = {
    "cli": "runs a command (alembert.cli main/execute, the API, a training Run, or a subprocess)",
    "export": "exports an ONNX graph (torch.onnx.export)",
    "train": "takes optimiser steps",
}


def _watch(item) -> tuple[pytest.MonkeyPatch, set[str], list] | None:
    """Watch, from the start of ``item``'s setup (its module and session fixtures included, when it
    is the first to need them), whatever a marker it lacks names; None when it is marked ``cli``."""
    import importlib
    import pkgutil
    import subprocess

    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    import alembert.cli
    from alembert.training.runner import Run

    marked = {m.name for m in item.iter_markers()}
    if "cli" in marked:  # a command may train and export as it runs
        return None
    patch, seen, hooks = pytest.MonkeyPatch(), set(), []

    def watch(owner, name: str, marker: str, when=lambda *args, **kwargs: True) -> None:
        real = getattr(owner, name)

        def watched(*args, **kwargs):
            if when(*args, **kwargs):
                seen.add(marker)
            return real(*args, **kwargs)

        patch.setattr(owner, name, watched)

    for info in pkgutil.iter_modules(alembert.cli.__path__):
        module = importlib.import_module(f"alembert.cli.{info.name}")
        for name in ("main", "execute", "run"):  # main() dispatches to run(args), the API to execute(args)
            if callable(getattr(module, name, None)):
                watch(module, name, "cli")
    watch(Run, "__init__", "cli")
    watch(subprocess.Popen, "__init__", "cli", when=_runs_python)  # a script, a command, a launcher
    if "export" not in marked:
        watch(torch.onnx, "export", "export")
    if "train" not in marked:
        hooks.append(register_optimizer_step_pre_hook(lambda *a: seen.add("train")))
    return patch, seen, hooks


def _runs_python(popen, args=None, *rest, **kwargs) -> bool:
    """A process that runs Python code (a script, ``alembert``, ``accelerate launch``, ``torchrun``),
    not a library's own helper (``platform.processor()`` runs ``uname -p``)."""
    import sys

    argv = kwargs.get("args", args)
    first = str((argv if isinstance(argv, list | tuple) else [argv])[0] or "")
    name = os.path.basename(first.split()[0]) if first.strip() else ""
    return first == sys.executable or name.startswith("python") or name in ("alembert", "accelerate", "torchrun")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    item.stash[_WATCH] = _watch(item)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A test that did what a marker names without carrying it fails here, naming the marker to
    add: the fast tier cannot silently grow a command, an export or a training loop."""
    watching = item.stash.get(_WATCH, None)
    missing: list[str] = []
    if watching is not None:
        patch, seen, hooks = watching
        patch.undo()
        for hook in hooks:
            hook.remove()
        missing = sorted(seen - {m.name for m in item.iter_markers()})
    result = yield
    if missing:
        report = os.environ.get("ALEMBERT_TIERS_REPORT")  # list every unmarked test in one run instead
        if report:
            with open(report, "a") as f:
                f.writelines(f"{item.nodeid} {m}\n" for m in missing)
        else:
            pytest.fail(
                f"{item.nodeid} {', '.join(TIERS[m] for m in missing)}: mark it "
                + " and ".join(f"@pytest.mark.{m}" for m in missing)
                + " (or set pytestmark in its module), so that `make test-unit` leaves it out",
                pytrace=False,
            )
    return result


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from alembert.cli.main import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
