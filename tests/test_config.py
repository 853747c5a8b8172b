import pytest

from alembert.config.load import build_config, parse_set
from alembert.config.schema import DistillConfig, FinetuneConfig
from alembert.errors import AlembertError


def test_yaml_then_flags_override(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model: some/dir\ntrain: {lr: 1.0e-4, epochs: 2}\ndata: {task: mrpc}\n")
    cfg = build_config(FinetuneConfig, cfg_file, {"train.lr": 3e-5, "train.epochs": None})
    assert cfg.train.lr == 3e-5 and cfg.train.epochs == 2 and cfg.data.task == "mrpc" and cfg.model == "some/dir"


def test_unknown_nested_field_is_named(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train: {learning_rate: 1.0}\n")
    with pytest.raises(AlembertError, match=r"unknown field 'train.learning_rate'.*lr"):
        build_config(FinetuneConfig, cfg_file)


def test_ill_typed_field_is_named():
    with pytest.raises(AlembertError, match=r"field 'train.batch_size'.*'many'"):
        build_config(FinetuneConfig, None, {"train.batch_size": "many"})


def test_bad_yaml_names_line(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  lr: [1,\n")
    with pytest.raises(AlembertError, match=r"c.yaml line \d+: not valid YAML"):
        build_config(FinetuneConfig, cfg_file)


def test_set_parses_yaml_scalars():
    assert parse_set(["train.lr=3e-5", "student.layers=[0, 2]"]) == {"train.lr": 3e-5, "student.layers": [0, 2]}
    with pytest.raises(AlembertError, match="FIELD=VALUE"):
        parse_set(["train.lr"])


def test_distill_config_accepts_inline_recipe():
    cfg = build_config(
        DistillConfig, None, {"teacher": "t", "recipe": {"name": "x", "stages": [{"losses": [{"loss": "kd"}]}]}}
    )
    assert isinstance(cfg.recipe, dict)
