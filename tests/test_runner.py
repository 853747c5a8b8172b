"""The shared stage runner: one metrics.json schema, validation before the folder, --dry-run,
--push-to-hub checked first, fit observed through callbacks."""

import json
import time

import pytest
from conftest import REPO, run_cli

from alembert.training.runner import SCHEMA

pytestmark = pytest.mark.cli

CORPUS = REPO.parent / "shared" / "data" / "corpus" / "gutenberg" / "Austen_Pride.txt"
SMALL = ["--task", "sst2", "--max-train-samples", 48, "--max-eval-samples", 16, "--batch-size", 8, "--epochs", 1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "pride.txt"
    path.write_text("\n".join(CORPUS.read_text(encoding="utf-8").splitlines()[:120]), encoding="utf-8")
    return path


def finetune(model, out, *extra):
    return ["finetune", "--model", model, *SMALL, "--output", out, *extra]


def distill(teacher, out, *extra):
    return [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        teacher,
        "--recipe",
        "kd",
        "--student-layers",
        "0,2",
        *SMALL,
        "--output",
        out,
        *extra,
    ]


def general(teacher, corpus, out, *extra):
    return [
        "distill-general",
        "--teacher",
        teacher,
        "--recipe",
        "cosine-hidden",
        "--corpus",
        corpus,
        "--max-length",
        64,
        "--heldout",
        8,
        "--batch-size",
        8,
        "--max-steps",
        6,
        "--student-layers",
        "0,2",
        "--output",
        out,
        *extra,
    ]


def plan_of(stdout: str) -> str:
    assert "dry run of `alembert" in stdout and "(nothing written)" in stdout, stdout
    return stdout[stdout.index("dry run of") :]


def test_every_command_writes_the_one_schema(tiny_bert, tiny_teacher, corpus, tmp_path, capsys):
    runs = {
        "finetune": finetune(tiny_bert, tmp_path / "f"),
        "distill": distill(tiny_teacher, tmp_path / "d"),
        "distill-general": general(tiny_bert, corpus, tmp_path / "g"),
    }
    for name, cmd in runs.items():
        code, _, err = run_cli(cmd, capsys)
        assert code == 0, (name, err)
        m = json.loads((tmp_path / cmd[cmd.index("--output") + 1].name / "metrics.json").read_text())
        assert tuple(m) == SCHEMA and m["command"] == name, name
        assert m["steps"] == sum(s["steps"] for s in m["stages"]) and m["dev"] == m["stages"][-1]["best_dev"]
        assert m["timings"]["fit"]["wall_s"] > 0 and m["samples_per_second"] > 0
    assert json.loads((tmp_path / "d" / "metrics.json").read_text())["teacher"] == str(tiny_teacher)


# ------------------------------------------------------------------ --dry-run


@pytest.mark.parametrize("kind", ["finetune", "distill", "distill-general"])
def test_dry_run_prints_a_plan_and_writes_nothing(kind, tiny_bert, tiny_teacher, corpus, tmp_path, capsys):
    out = tmp_path / "never"
    cmd = {
        "finetune": finetune(tiny_bert, out),
        "distill": distill(tiny_teacher, out),
        "distill-general": general(tiny_bert, corpus, out),
    }[kind]
    code, stdout, err = run_cli([*cmd, "--dry-run"], capsys)
    assert code == 0, err
    assert not out.exists()
    text = plan_of(stdout)
    assert "estimated wall time" in text and "peak memory" in text and "CPUs" in text


def _dry_plan(tiny_teacher, tmp_path, **train) -> dict:
    """The --dry-run plan of a kd distillation of 48 SST-2 sentences in batches of 8."""
    from alembert.config.load import build_config
    from alembert.config.schema import DistillConfig
    from alembert.tasks import task_kind

    fields = {
        "teacher": str(tiny_teacher),
        "recipe": "kd",
        "student.layers": [0, 2],
        "dry_run": True,
        "output_dir": str(tmp_path / "never"),
        "data.task": "sst2",
        "data.max_train_samples": 48,
        "data.max_eval_samples": 16,
        "data.transfer": "none",
        "train.batch_size": 8,
        **{f"train.{k}": v for k, v in train.items()},
    }
    return task_kind("sst2").distill(build_config(DistillConfig, None, fields))


def test_dry_run_estimate_fields(tiny_teacher, tmp_path):
    plan = _dry_plan(tiny_teacher, tmp_path, epochs=2)
    assert not (tmp_path / "never").exists()
    assert plan["train_examples"] == 48 and plan["dev_examples"] == 16
    [stage] = plan["stages"]
    assert stage["steps"] == 12 and plan["steps"] == 12  # 48 / 8 x 2 epochs
    assert stage["teacher"].startswith("teacher cached") and stage["evaluations"] == 2
    assert stage["cache_bytes"] == 4 * 48 * 2 == plan["cache_bytes"]  # two logits per example, no [CLS] layers
    assert stage["timed_steps"] >= 1 and stage["mean_step_s"] > 0 and stage["train_seconds"] > 0
    assert plan["estimated_seconds"] > 0 and plan["peak_memory_bytes"] > 0 and plan["setup_seconds"] >= 0
    assert plan["machine"]
    assert stage["epochs"] == 2.0


def test_dry_run_epochs_are_what_max_steps_leaves(tiny_teacher, tmp_path):
    [stage] = _dry_plan(tiny_teacher, tmp_path, epochs=3, max_steps=3)["stages"]
    assert stage["steps"] == 3 and stage["epochs"] == 0.5  # 3 of the 6 batches of one epoch, not the 3 epochs asked


def _bad_inputs(tiny_bert, tiny_teacher, corpus, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return [
        finetune(tiny_bert, tmp_path / "o1", "--max-length", 100000),
        finetune(tiny_bert, a_file),
        finetune(tiny_bert, tmp_path / "o2", "--task", "nope"),
        distill(tiny_teacher, tmp_path / "o3", "--student-layers", "0,9"),
        distill(tiny_teacher, tmp_path / "o4", "--recipe", "no-such-recipe"),
        distill(tiny_teacher, tmp_path / "o5", "--batch-size", 0),
        general(tiny_bert, tmp_path / "missing.txt", tmp_path / "o6"),
        general(tiny_bert, corpus, tmp_path / "o7", "--heldout", 100000),
    ]


def test_dry_run_refuses_what_the_real_run_refuses(tiny_bert, tiny_teacher, corpus, tmp_path, capsys):
    for cmd in _bad_inputs(tiny_bert, tiny_teacher, corpus, tmp_path):
        code, _, real = run_cli(cmd, capsys)
        dry_code, _, dry = run_cli([*cmd, "--dry-run"], capsys)
        assert code != 0 and real.startswith("error: ") and len(real.strip().splitlines()) == 1, (cmd, real)
        assert (dry_code, dry) == (code, real), cmd
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("o")]  # no output folder, real or dry


# ------------------------------------------------------------------ --push-to-hub


@pytest.mark.parametrize(
    "env,needle",
    [({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE"), ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot be reached")],
)
def test_push_to_hub_offline_fails_before_anything(
    env, needle, tiny_bert, tiny_teacher, corpus, tmp_path, capsys, monkeypatch
):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if "HF_HUB_OFFLINE" not in env:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    export = ["export", tiny_teacher, "--onnx", "--quantize", "int8", "--output", tmp_path / "e"]
    then_task = [*general(tiny_bert, corpus, tmp_path / "t"), "--then-task", "sst2", "--task-teacher", tiny_teacher]
    for cmd in [
        finetune(tiny_bert, tmp_path / "f"),
        distill(tiny_teacher, tmp_path / "d"),
        general(tiny_bert, corpus, tmp_path / "g"),
        export,
        then_task,
    ]:
        start = time.perf_counter()
        code, _, err = run_cli([*cmd, "--push-to-hub", "someone/student"], capsys)
        assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err
        assert time.perf_counter() - start < 15, "the check must be quick"
    assert list(tmp_path.iterdir()) == []


def test_push_to_hub_bad_repo_id(tiny_bert, tmp_path, capsys):
    code, _, err = run_cli([*finetune(tiny_bert, tmp_path / "f"), "--push-to-hub", "a/b/c"], capsys)
    assert code != 0 and "not a repository id" in err and not (tmp_path / "f").exists()


# ------------------------------------------------------------------ drift bugs


def test_refused_qa_runs_leave_no_folder(tiny_bert, tmp_path, capsys):
    qa = ["--task", "squad", "--max-train-samples", 8, "--max-eval-samples", 8, "--max-length", 128]
    code, _, err = run_cli(
        ["distill", "--teacher", tiny_bert, "--recipe", "kd", *qa, "--output", tmp_path / "d"], capsys
    )
    assert code != 0 and "not a question-answering model" in err and not (tmp_path / "d").exists()
    code, _, err = run_cli(
        ["finetune", "--model", tiny_bert, *qa, "--train-file", tmp_path / "none.json", "--output", tmp_path / "f"],
        capsys,
    )
    assert code != 0 and err.startswith("error: ") and not (tmp_path / "f").exists()


# ------------------------------------------------------------------ fit through callbacks


def test_fit_is_observed_through_callbacks(tiny_bert, tmp_path):
    from alembert.config.load import build_config
    from alembert.config.schema import FinetuneConfig
    from alembert.tasks import task_kind
    from alembert.training.loop import Callbacks

    seen = {"step": [], "eval": [], "best": []}
    callbacks = Callbacks(
        on_step=lambda step, s, terms: seen["step"].append((step, s, terms)),
        on_eval=lambda m, step: seen["eval"].append((step, m)),
        on_best=lambda m, step: seen["best"].append((step, m)),
    )
    cfg = build_config(
        FinetuneConfig,
        None,
        {
            "model": str(tiny_bert),
            "output_dir": str(tmp_path / "f"),
            "data.task": "sst2",
            "data.max_train_samples": 48,
            "data.max_eval_samples": 16,
            "train.batch_size": 8,
            "train.epochs": 1,
            "train.eval_every": 2,
        },
    )
    summary = task_kind("sst2").finetune(cfg, callbacks)
    assert [s for s, _, _ in seen["step"]] == list(range(1, 7)) and all(
        t > 0 and "loss" in d for _, t, d in seen["step"]
    )
    assert [s for s, _ in seen["eval"]] == [2, 4, 6]
    assert seen["best"][-1] == (summary["best_step"], summary["dev"])
    logged = [json.loads(line) for line in (tmp_path / "f" / "log.jsonl").read_text().splitlines()]
    assert [r["eval"] for r in logged if "eval" in r] == [m for _, m in seen["eval"]]
    assert callbacks.timers.wall("eval") < callbacks.timers.wall("fit")


# ------------------------------------------------------------------ the command list


def test_commands_are_discovered_and_help_stays_torch_free():
    import subprocess
    import sys

    code = (
        "import sys; from alembert.cli.main import build_parser, command_modules; build_parser(); "
        "print(','.join(command_modules())); print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    names, torch_loaded = proc.stdout.split()
    assert names.split(",")[:4] == ["distill", "distill-general", "finetune", "evaluate"]
    assert {"augment", "bench", "export", "plot", "predict", "serve-web"} <= set(names.split(","))
    assert torch_loaded == "False"
