"""The teacher's cached logits from its fastest export (alembert.export.teacher_labels): equal to the
PyTorch teacher's within int8's noise, and PyTorch (with a note) whenever the export does not apply."""

import json

import numpy as np
import pytest
import torch

from alembert.config.schema import DataConfig
from alembert.data.glue import get_task
from alembert.data.load import load_split
from alembert.data.tokenize import tokenize_dataset
from alembert.distill.teacher_cache import build_cache, cache_key
from alembert.export import auto
from alembert.export import teacher_labels as tl
from alembert.models.load import load_classifier, load_tokenizer

DATA = {"task": "sst2", "max_length": 64}


@pytest.fixture(scope="module")
def teacher_rows(tiny_teacher):
    tokenizer = load_tokenizer(tiny_teacher)
    cfg = DataConfig(task="sst2", max_train_samples=tl.MIN_ROWS)
    rows = tokenize_dataset(load_split(cfg, get_task("sst2"), "train"), tokenizer, 64)
    return load_classifier(tiny_teacher, get_task("sst2")).eval(), tokenizer, rows


@pytest.mark.export
def test_the_export_labels_the_rows_as_the_pytorch_teacher_does(tiny_teacher, teacher_rows, tmp_path, monkeypatch):
    monkeypatch.setattr(tl, "CANDIDATES", ("int8-dynamic",))  # one int8 candidate: the test stays short
    monkeypatch.setattr(tl, "WORTH_SECONDS", 0.0)  # the tiny teacher labels in no time: export anyway
    teacher, tokenizer, rows = teacher_rows
    labeller = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows, tokenizer, [])
    assert labeller.model is not None, labeller.note
    assert labeller.variant in ("int8-dynamic", "fp32") and labeller.speedup > 1.0
    info = json.loads((tl.export_folder(teacher, 64) / "alembert_export.json").read_text())
    chosen = info["auto"]["candidates"][labeller.variant]["dev"]
    assert abs(chosen - info["auto"]["source_dev"]) <= auto.MAX_DROP  # the stated tolerance, on the dev set
    fast = build_cache(teacher, rows, tokenizer, 64, [], root=tmp_path, labeller=labeller)
    torch_cache = build_cache(teacher, rows, tokenizer, 64, [], root=tmp_path)
    assert fast.folder != torch_cache.folder  # its own cache key
    # the key a dry run looks up under bf16 autocast is the one written: an export runs without autocast
    assert cache_key(teacher, rows, tokenizer, 64, [], torch.bfloat16, labeller.source) == fast.folder.name
    assert json.loads((fast.folder / "meta.json").read_text())["computed_by"] == f"export:{labeller.variant}"
    a, b = np.asarray(fast.logits), np.asarray(torch_cache.logits)
    scale = np.abs(b).max()
    assert np.abs(a - b).max() <= 0.05 * scale  # int8 noise, not another model
    clear = np.abs(b[:, 0] - b[:, 1]) > 0.1 * scale  # where the teacher is not near a tie, the same class
    assert clear.sum() > 100 and (a[clear].argmax(1) == b[clear].argmax(1)).all()
    again = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows, tokenizer, [], autocast=torch.bfloat16)
    assert again.export == labeller.export and again.variant == labeller.variant  # the export is cached
    assert again.speedup is not None  # timed against the teacher under the run's autocast


@pytest.mark.export
def test_a_refused_export_falls_back_to_pytorch_with_a_note(tiny_teacher, teacher_rows, tmp_path, monkeypatch):
    monkeypatch.setattr(tl, "CANDIDATES", ("int8-dynamic",))
    monkeypatch.setattr(tl, "WORTH_SECONDS", 0.0)
    monkeypatch.setattr(auto, "MAX_DROP", -1.0)  # no variant can keep the dev metric
    monkeypatch.setattr(tl, "export_folder", lambda teacher, n: tmp_path / "refused")
    teacher, tokenizer, rows = teacher_rows
    labeller = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows, tokenizer, [])
    assert labeller.model is None and "export was refused" in labeller.note and "accuracy check" in labeller.note
    cache = build_cache(teacher, rows, tokenizer, 64, [], root=tmp_path, labeller=labeller)
    assert json.loads((cache.folder / "meta.json").read_text())["computed_by"] == "pytorch"
    assert not (tmp_path / "refused").exists()  # nothing half-written left behind


def test_pytorch_labels_where_an_export_does_not_apply(tiny_teacher, teacher_rows):
    teacher, tokenizer, rows = teacher_rows
    few = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows.select(range(10)), tokenizer, [])
    assert few.model is None and "10 rows <" in few.note
    cls = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows, tokenizer, [1, 3])
    assert cls.model is None and "[CLS] states" in cls.note
    off = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows, tokenizer, [], enabled=False)
    assert off.model is None and "--no-fast-teacher" in off.note
    quick = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows, tokenizer, [])
    assert quick.model is None and "less than the 300 s an export must save" in quick.note  # not worth it


def test_a_dry_run_says_the_export_comes_first_and_builds_nothing(tiny_teacher, teacher_rows, monkeypatch):
    monkeypatch.setattr(tl, "WORTH_SECONDS", 0.0)
    teacher, tokenizer, rows = teacher_rows
    plan = tl.choose_labeller(teacher, str(tiny_teacher), DATA, rows, tokenizer, [], dry_run=True)
    assert plan.pending and "built and checked first" in plan.note
    assert not tl.export_folder(teacher, 64).exists()
