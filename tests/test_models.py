"""Model resolution, loading across encoder families, and student construction."""

from pathlib import Path

import pytest
import torch
from conftest import save_tiny

from alembert.data.glue import get_task
from alembert.errors import AlembertError
from alembert.models.load import load_classifier
from alembert.models.resolve import resolve_model
from alembert.models.student import (
    every_other_layer,
    layer_list_name,
    student_from_config,
    student_from_teacher,
)

FAMILIES = ["bert", "roberta", "electra", "mpnet", "distilbert"]


def test_minilm_alias_resolves_to_packaged_weights():
    path = resolve_model("minilm-l6")
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_loads_for_classification_and_slices(family, tmp_path, bert_tokenizer):
    path = save_tiny(tmp_path / family, bert_tokenizer, family=family, layers=4)
    teacher = load_classifier(path, get_task("rte")).eval()
    assert teacher.config.id2label == {0: "entailment", 1: "not_entailment"}
    student = student_from_teacher(teacher, [1, 3]).eval()
    assert type(student) is type(teacher) and student.config.num_hidden_layers == 2
    prefix = layer_list_name(teacher)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for key, value in s_state.items():
        if key.startswith(prefix + "."):
            idx, rest = key[len(prefix) + 1 :].split(".", 1)
            assert torch.equal(value, t_state[f"{prefix}.{[1, 3][int(idx)]}.{rest}"])
        else:
            assert torch.equal(value, t_state[key])  # embeddings, pooler, head copied


def test_student_keeps_all_layers_is_the_teacher(tiny_bert):
    teacher = load_classifier(tiny_bert, get_task("sst2")).eval()
    student = student_from_teacher(teacher, [0, 1, 2, 3]).eval()
    ids = torch.tensor([[101, 7592, 2088, 102]])
    assert torch.allclose(teacher(ids).logits, student(ids).logits)


def test_every_other_layer():
    assert every_other_layer(12) == [0, 2, 4, 6, 8, 10] and every_other_layer(6) == [0, 2, 4]


def test_student_layer_out_of_range(tiny_bert):
    teacher = load_classifier(tiny_bert, get_task("sst2"))
    with pytest.raises(AlembertError, match=r"entry 1 is teacher layer 9, out of range 0\.\.3"):
        student_from_teacher(teacher, [0, 9])
    with pytest.raises(AlembertError, match="repeats"):
        student_from_teacher(teacher, [1, 1])


def test_student_from_config_narrow(tiny_bert):
    teacher = load_classifier(tiny_bert, get_task("sst2"))
    student = student_from_config(teacher, num_layers=2, hidden_size=16, intermediate_size=24, num_heads=2)
    assert student.config.hidden_size == 16 and student.config.vocab_size == teacher.config.vocab_size
    assert student(torch.tensor([[101, 102]])).logits.shape == (1, 2)
    with pytest.raises(AlembertError, match="not divisible"):
        student_from_config(teacher, num_layers=2, hidden_size=15, num_heads=2)


def test_head_size_mismatch_is_reported(tiny_bert, tmp_path):
    load_classifier(tiny_bert, get_task("sst2")).save_pretrained(tmp_path / "sst2-model")
    (tmp_path / "sst2-model").joinpath("x").write_text("")
    with pytest.raises(AlembertError, match="2-label head but task mnli needs 3"):
        load_classifier(tmp_path / "sst2-model", get_task("mnli"))


def _unpack_and_read(blob: bytes, target: str, start, out) -> None:
    from alembert.models.packaged import unpack

    start.wait()
    folder = unpack(blob, Path(target))
    out.put(sorted((p.relative_to(folder).as_posix(), p.read_bytes()) for p in folder.rglob("*") if p.is_file()))


def test_the_packaged_archive_unpacks_safely_from_several_processes_at_once(tmp_path):
    """accelerate launch on an empty cache: every process unpacks mpnet-base at once. They used to share one
    temporary folder and remove each other's (FileNotFoundError: .../1_Pooling/config.json); each now unpacks
    into its own and the first complete folder stays in place while the others read it."""
    import io
    import multiprocessing as mp
    import zipfile

    files = {f"model/part{i}/file{j}.bin": bytes([i, j]) * 20000 for i in range(6) for j in range(8)}
    files["model/config.json"] = b"{}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    want = sorted((name.split("/", 1)[1], data) for name, data in files.items())
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(4), ctx.Queue()
    target = tmp_path / "models" / "unpacked"
    target.parent.mkdir()
    procs = [ctx.Process(target=_unpack_and_read, args=(buf.getvalue(), str(target), start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    seen = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert all(s == want for s in seen)
    assert sorted(p.name for p in target.parent.iterdir()) == ["unpacked"]  # no copy left behind
