"""Issue 7, item 4: every bad setup is refused before any compute, with a one-line error
naming the problem and the fix, exit code 2, and the output directory left as it was.

Each case runs ``alembert distill`` through the CLI twice where it can (and each run again
with ``--dry-run``, which must give the same error and write nothing): into an output
folder that already exists (holding a sentinel file, plus a ``config.json`` for the cases
that are about a previous run) whose files must come out byte for byte the same with no
new ones, and into a folder that does not exist yet, which must not be created.
"""

import json

import pytest
from conftest import run_cli, save_tiny

pytestmark = pytest.mark.cli

SENTINEL = "notes.txt"


def distill(teacher, out, *extra):
    return [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        teacher,
        "--task",
        "sst2",
        "--max-train-samples",
        16,
        "--max-eval-samples",
        8,
        "--epochs",
        1,
        "--batch-size",
        8,
        "--output",
        out,
        *extra,
    ]


def snapshot(folder):
    """Every file and folder under ``folder``: relative path -> bytes (None for a folder)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def existing_output(tmp_path, model: bool = False):
    out = tmp_path / "existing"
    out.mkdir()
    (out / SENTINEL).write_text("results of an earlier experiment\n")
    if model:  # what a finished run leaves: a model's config.json
        (out / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    return out


def refused(args_for, out, capsys, *needles):
    """Run ``args_for(out)``; check the error line and that ``out`` is untouched (or still absent)."""
    before = snapshot(out) if out.exists() else None
    capsys.readouterr()  # drop what the set-up printed
    code, _, err = run_cli(args_for(out), capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    if before is None:
        assert not out.exists(), f"{out} was created by a refused run"
    else:
        assert snapshot(out) == before, f"{out} was modified by a refused run"
    # --dry-run runs the same validation: the same one-line error, and it writes nothing either
    dry_code, _, dry_err = run_cli([*args_for(out), "--dry-run"], capsys)
    assert (dry_code, dry_err) == (code, err), dry_err
    assert (not out.exists()) if before is None else snapshot(out) == before
    return lines[0]


def refused_both(args_for, tmp_path, capsys, *needles):
    """The same refusal into a folder that does not exist yet and into one that does."""
    refused(args_for, tmp_path / "absent", capsys, *needles)
    return refused(args_for, existing_output(tmp_path), capsys, *needles)


def write_recipe(tmp_path, term: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"name: custom\nstages:\n  - losses:\n      - {term}\n")
    return path


def test_vocabularies_differ(tiny_teacher, tmp_path, capsys):
    from transformers import BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]))
    student = save_tiny(tmp_path / "other-vocab", BertTokenizerFast(vocab_file=str(vocab)), layers=2)
    refused_both(
        lambda out: distill(tiny_teacher, out, "--recipe", "kd", "--student", student),
        tmp_path,
        capsys,
        "different vocabularies",
        "--student-layers",
    )


def test_mapping_index_out_of_range(tiny_teacher, tmp_path, capsys):
    recipe = write_recipe(tmp_path, "{loss: pkd, mapping: '1:9'}")
    refused_both(
        lambda out: distill(tiny_teacher, out, "--recipe", recipe, "--student-layers", "0,2"),
        tmp_path,
        capsys,
        "teacher layer 9 out of range 0..4",
    )


def test_hidden_sizes_differ_without_projection(tiny_teacher, tmp_path, capsys):
    recipe = write_recipe(tmp_path, "{loss: hidden_mse, projection: false}")
    line = refused_both(
        lambda out: distill(
            tiny_teacher, out, "--recipe", recipe, "--student-config", "num_layers=2,hidden_size=16,num_heads=2"
        ),
        tmp_path,
        capsys,
        "hidden_mse",
        "projection: false",
        "16",
        "32",
    )
    assert "hidden size 32" in line  # the fix: a student of the teacher's width


def test_attention_head_counts_differ(tiny_teacher, tmp_path, capsys):
    refused_both(
        lambda out: distill(
            tiny_teacher, out, "--recipe", "tinybert", "--student-config", "num_layers=2,hidden_size=16,num_heads=4"
        ),
        tmp_path,
        capsys,
        "head counts",
        "2 heads",
    )


def test_label_values_outside_the_task(tiny_teacher, tmp_path, capsys):
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\na fine film\t1\na dull film\t7\n")
    refused_both(
        lambda out: distill(tiny_teacher, out, "--recipe", "kd", "--train-file", data),
        tmp_path,
        capsys,
        "train.tsv",
        "7",
        "line 3",
    )


def test_empty_dataset(tiny_teacher, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text("")
    refused_both(
        lambda out: distill(tiny_teacher, out, "--recipe", "kd", "--train-file", data),
        tmp_path,
        capsys,
        "train.jsonl",
        "empty",
    )


def test_output_already_holds_a_model(tiny_teacher, tmp_path, capsys):
    out = existing_output(tmp_path, model=True)
    refused(lambda o: distill(tiny_teacher, o, "--recipe", "kd"), out, capsys, "already holds a model", "--overwrite")


def test_resume_without_checkpoint(tiny_teacher, tmp_path, capsys):
    refused(
        lambda o: distill(tiny_teacher, o, "--recipe", "kd", "--resume"),
        tmp_path / "absent",
        capsys,
        "does not exist",
        "--output",
    )
    out = existing_output(tmp_path, model=True)
    refused(
        lambda o: distill(tiny_teacher, o, "--recipe", "kd", "--resume"), out, capsys, "no checkpoint", "--save-every"
    )


def test_resume_from_corrupt_checkpoint(tiny_teacher, tmp_path, capsys):
    out = existing_output(tmp_path, model=True)
    bad = out / "checkpoints" / "stage0-step0000004"
    bad.mkdir(parents=True)
    (bad / "alembert_state.json").write_text('{"stage": 0, "step": ')  # cut off mid-write
    (bad / "model.safetensors").write_bytes(b"")
    refused(
        lambda o: distill(tiny_teacher, o, "--recipe", "kd", "--resume"),
        out,
        capsys,
        "corrupt",
        "stage0-step0000004",
        "delete it",
    )
