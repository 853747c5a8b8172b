"""The loss-term registry: one self-describing term per recipe loss name."""

import pytest
import torch
from conftest import run_cli

import alembert.terms.logits as logit_terms
from alembert.config.load import build_config, set_dotted
from alembert.config.schema import DistillConfig
from alembert.distill.recipe import load_recipe
from alembert.errors import AlembertError
from alembert.losses import kd_loss
from alembert.terms import TERMS, get_term


def test_registry_holds_every_paper_loss():
    assert {"kd", "ce", "mlm", "cosine", "hidden_mse", "attention", "pkd"} <= set(TERMS)
    assert get_term("kd").name == "kd" and get_term("pkd").default_mapping == "skip"
    with pytest.raises(AlembertError, match="unknown loss 'kl'; known losses: .*attention.*kd"):
        get_term("kl")


def test_terms_declare_what_they_need():
    assert get_term("kd").cacheable and get_term("pkd").cacheable and not get_term("hidden_mse").cacheable
    assert get_term("attention").needs.attention and not get_term("attention").allow_embeddings
    assert not get_term("ce").needs.teacher and not get_term("ce").raw_text
    assert get_term("hidden_mse").projects and not get_term("kd").projects
    assert set(get_term("kd").Params.model_fields) == {"temperature"} and not get_term("ce").Params.model_fields


def test_recipe_validates_against_the_registry():
    with pytest.raises(AlembertError, match="unknown loss 'kl'"):
        load_recipe({"name": "x", "stages": [{"losses": [{"loss": "kl"}]}]})
    with pytest.raises(AlembertError, match="parameter 'temperature'.*its parameters: none"):
        load_recipe({"name": "x", "stages": [{"losses": [{"loss": "ce", "temperature": 2}]}]})
    with pytest.raises(AlembertError, match="greater than 0"):
        load_recipe({"name": "x", "stages": [{"losses": [{"loss": "kd", "temperature": 0}]}]})
    with pytest.raises(AlembertError, match="takes no mapping"):
        load_recipe({"name": "x", "stages": [{"losses": [{"loss": "kd", "mapping": "skip"}]}]})
    assert load_recipe("kd").stages[0].losses[0].params.temperature == 2.0


def test_stage_rules_come_from_the_terms():
    tinybert = load_recipe("tinybert")
    assert not tinybert.stages[0].cacheable and tinybert.stages[1].cacheable
    assert tinybert.find_unused_parameters  # the intermediate stage never reaches the classifier
    assert not load_recipe("kd").find_unused_parameters


def test_set_indexes_lists():
    tree = {"recipe": {"stages": [{"losses": [{"loss": "kd"}, {"loss": "ce"}]}]}}
    set_dotted(tree, "recipe.stages.0.losses.1.weight", 0.25)
    assert tree["recipe"]["stages"][0]["losses"][1] == {"loss": "ce", "weight": 0.25}
    with pytest.raises(AlembertError, match="'5' is not an index of a list of 1 items"):
        set_dotted(tree, "recipe.stages.5.name", "x")


def test_set_reaches_a_named_recipes_field():
    cfg = build_config(
        DistillConfig,
        None,
        {"teacher": "t", "recipe": "kd", "recipe.stages.0.losses.0.temperature": 4},
        {"recipe": lambda name: load_recipe(name).model_dump(mode="json")},
    )
    assert load_recipe(cfg.recipe).stages[0].losses[0].params.temperature == 4


@pytest.mark.cli
def test_set_temperature_reaches_kd_loss(tiny_teacher, tmp_path, capsys, monkeypatch):
    seen = []

    def spy(student_logits, teacher_logits, temperature=1.0, mask=None):
        seen.append(temperature)
        return kd_loss(student_logits, teacher_logits, temperature, mask)

    monkeypatch.setattr(logit_terms, "kd_loss", spy)
    code, _, err = run_cli(
        [
            "distill",
            "--transfer",
            "none",
            "--teacher",
            tiny_teacher,
            "--recipe",
            "kd",
            "--task",
            "sst2",
            "--max-train-samples",
            16,
            "--max-eval-samples",
            8,
            "--max-steps",
            1,
            "--batch-size",
            8,
            "--student-layers",
            "0",
            "--set",
            "recipe.stages.0.losses.0.temperature=4",
            "--output",
            tmp_path / "s",
        ],
        capsys,
    )
    assert code == 0, err
    assert seen and set(seen) == {4.0}


def test_a_new_term_registers_itself():
    from alembert.terms import Needs, Term

    class Zero(Term):
        name = "zero-test"
        needs = Needs(teacher=False)

        def value(self, step):
            return torch.zeros(())

    try:
        recipe = load_recipe({"name": "x", "stages": [{"losses": [{"loss": "zero-test"}]}]})
        assert recipe.stages[0].losses[0].term is Zero and not recipe.stages[0].needs_teacher
    finally:
        TERMS.pop("zero-test")
