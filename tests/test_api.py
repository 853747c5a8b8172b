"""The Python API: the README's example as written, and the same configs and errors as the CLI."""

import re
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli

import alembert
from alembert.api import _namespace, _parser
from alembert.cli import distill as distill_cli
from alembert.cli import finetune as finetune_cli
from alembert.cli.common import config_from_args
from alembert.cli.main import build_parser
from alembert.config.schema import DistillConfig, FinetuneConfig
from alembert.errors import AlembertError


def readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.cli
def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = readme_python_blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md From Python block {i + 1}", "exec"), {"__name__": "__readme__"})
    runs = tmp_path / "runs"
    for path in (
        "py-teacher/metrics.json",
        "py-student/README.md",
        "py-student-int8/model.onnx",
        "py-eval/eval_results.json",
        "py-trainer/model.safetensors",
    ):
        assert (runs / path).is_file(), path
    printed = capsys.readouterr().out
    assert "retention" in printed and "'pkd'" in printed


@pytest.mark.cli
def test_import_stays_light():
    import subprocess

    code = (
        "import sys, alembert; alembert.Result; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(callable(alembert.distill))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "True"


def cli_config(cls, command, argv):
    args = build_parser().parse_args([command, *map(str, argv)])
    if command == "distill":
        args.set = [*distill_cli.student_config_sets(args.student_config), *(args.set or [])]
    return config_from_args(cls, args)


def api_config(cls, name, command, config=None, **kwargs):
    import contextlib

    with contextlib.ExitStack() as stack:
        args = _namespace(name, command, cls, config, kwargs, stack)
    if name == "distill":
        args.set = [*distill_cli.student_config_sets(args.student_config), *(args.set or [])]
    return config_from_args(cls, args)


def test_keywords_give_the_cli_config(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text("train: {lr: 1.0e-4, epochs: 2}\ndata: {max_length: 64}\n")
    argv = [
        "--teacher",
        "t",
        "--recipe",
        "tinybert",
        "--task",
        "mrpc",
        "--student-layers",
        "0,2",
        "--labels",
        "a,b",
        "--no-cache-teacher",
        "--overwrite",
        "--config",
        yaml,
        "--set",
        "recipe.stages.1.losses.0.temperature=3",
        "--set",
        "train.seed=3",
        "--student-config",
        "num_heads=2",
        "--output",
        tmp_path / "o",
    ]
    cli = cli_config(DistillConfig, "distill", argv)
    api = api_config(
        DistillConfig,
        "distill",
        distill_cli,
        config=yaml,
        teacher="t",
        recipe="tinybert",
        task="mrpc",
        student_layers=[0, 2],
        labels="a,b",
        no_cache_teacher=True,
        overwrite=True,
        student_config="num_heads=2",
        set={"recipe.stages.1.losses.0.temperature": 3, "train.seed": 3},
        output=tmp_path / "o",
    )
    assert api == cli and api.cache_teacher is False and api.recipe["stages"][1]["losses"][0]["temperature"] == 3
    # config fields and sections, and a config object under the keywords
    base = FinetuneConfig(model="x", train={"lr": 1e-3})
    api = api_config(
        FinetuneConfig, "finetune", finetune_cli, config=base, train={"epochs": 2}, max_length=64, data={"task": "rte"}
    )
    cli = cli_config(
        FinetuneConfig, "finetune", ["--model", "x", "--lr", "1e-3", "--epochs", 2, "--max-length", 64, "--task", "rte"]
    )
    assert api == cli and api.data.model_fields_set == cli.data.model_fields_set


@pytest.mark.cli
def test_errors_are_the_cli_one_line_errors(tiny_teacher, tmp_path, capsys):
    calls = [
        (
            ["distill", "--teacher", tiny_teacher, "--recipe", "nope", "--output", tmp_path / "a"],
            lambda: alembert.distill(teacher=tiny_teacher, recipe="nope", output=tmp_path / "a"),
        ),
        (
            ["finetune", "--model", tiny_teacher, "--set", "train.lr=-1", "--output", tmp_path / "b"],
            lambda: alembert.finetune(model=tiny_teacher, set={"train.lr": -1}, output=tmp_path / "b"),
        ),
        (["distill-general", "--then-task", "sst2"], lambda: alembert.distill_general(then_task="sst2")),
        (["export", tiny_teacher, "--output", tmp_path / "c"], None),
        (["bench", tiny_teacher], lambda: alembert.bench(tiny_teacher)),
    ]
    for argv, call in calls:
        code, _, err = run_cli(argv, capsys)
        assert code == 2
        if call is None:
            continue
        with pytest.raises(AlembertError) as exc:
            call()
        assert f"error: {exc.value}\n" == err
        assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(AlembertError, match="unknown argument 'learning_rate'; use one of .*lr"):
        alembert.finetune(learning_rate=1e-3)
    with pytest.raises(AlembertError, match="on/off switch"):
        alembert.finetune(overwrite="yes")
    with pytest.raises(AlembertError, match="a model must be a path"):
        alembert.evaluate(3, task="sst2")


def test_model_object_without_tokenizer_is_refused():
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    )
    with pytest.raises(AlembertError, match="pass tokenizer="):
        alembert.evaluate(model, task="sst2")


def test_api_parser_is_the_cli_parser():
    cli = build_parser()._subparsers._group_actions[0].choices["distill"]
    api = _parser("distill", distill_cli)
    assert [a.dest for a in cli._actions] == [a.dest for a in api._actions]
    assert Path(alembert.api.__file__).name == "api.py"


@pytest.mark.cli
def test_distill_general_with_its_task_stage_and_bench(tiny_bert, tiny_teacher, tmp_path):
    """The two-stage call returns both results; bench returns each model's row; a loaded student object works."""
    from transformers import AutoModelForSequenceClassification

    from alembert.config.schema import DistillGeneralConfig

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join((REPO.parent / "shared/data/corpus/gutenberg/Austen_Pride.txt").read_text().splitlines()[:120])
    )
    r = alembert.distill_general(
        teacher=tiny_bert,
        recipe="tinybert-general",
        corpus=[corpus],
        max_length=64,
        heldout=8,
        batch_size=8,
        max_steps=2,
        student_layers=[0, 2],
        output=tmp_path / "general",
        then_task="sst2",
        task_teacher=tiny_teacher,
        task_epochs=1,
        set={"train.max_steps": 2},
    )
    assert isinstance(r.config, DistillGeneralConfig) and r.config.train.max_steps == 2 and r.metrics
    assert r.task_stage.output_dir == tmp_path / "general" / "task-sst2" and "accuracy" in r.task_stage.metrics
    assert r.task_stage.metrics == r.task_stage.summary["dev"] and "README.md" in r.task_stage.files
    student = AutoModelForSequenceClassification.from_pretrained(r.task_stage.output_dir)
    b = alembert.bench(
        [tiny_teacher, student], task="sst2", max_eval_samples=24, repeats=1, warmup=0, output=tmp_path / "bench"
    )
    assert len(b.metrics) == 2 and all("dev_metric" in row for row in b.metrics.values())
    assert "bench.json" in b.files and b.summary["reference"] in b.metrics


@pytest.mark.cli  # goes through the command's execute (refused before any work)
def test_a_keyword_the_flag_cannot_read_is_one_line_naming_it(tmp_path):
    import alembert
    from alembert.errors import AlembertError

    with pytest.raises(AlembertError) as info:
        alembert.finetune(epochs="x", output=tmp_path / "out")
    assert str(info.value).startswith("finetune: epochs='x' is not a number") and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
