"""Model cards: huggingface_hub ModelCards whose model-index holds the student's dev metrics."""

import json

import pytest
from conftest import run_cli
from huggingface_hub import ModelCard

from alembert.distill.card import write_model_card
from alembert.distill.recipe import load_recipe
from alembert.embedding.card import write_embedding_card
from alembert.models.card import base_model
from alembert.tasks import task_kind


def index_metrics(card: ModelCard) -> dict:
    return {r.metric_type: r.metric_value for r in card.data.eval_results}


@pytest.mark.cli
def test_distill_card_parses_with_the_run_metrics(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "student"
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
            32,
            "--max-eval-samples",
            24,
            "--epochs",
            1,
            "--batch-size",
            16,
            "--student-layers",
            "0,2",
            "--output",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-classification" and card.data.library_name == "transformers"
    assert {"alembert", "distillation", "kd"} <= set(card.data.tags)
    assert card.data.base_model is None  # a local teacher folder names no hub model
    assert index_metrics(card) == pytest.approx(metrics["dev"]) and set(index_metrics(card)) == {"accuracy"}
    result = card.data.eval_results[0]
    assert (result.task_type, result.dataset_type, result.dataset_config, result.dataset_split) == (
        "text-classification",
        "nyu-mll/glue",
        "sst2",
        "validation",
    )
    assert (
        "model-index" in card.content and "Retention" in card.text and "AutoModelForSequenceClassification" in card.text
    )


def summary(task, dev, **extra):
    return {
        "task": task,
        "teacher": "minilm-l6",
        "student": "layers 0,2,4",
        "main_metric": next(iter(dev)),
        "dev": dev,
        "teacher_dev": {k: v + 0.1 for k, v in dev.items()},
        "retention": 90.0,
        "stages": [{}],
        "train_examples": 10,
        "dev_examples": 5,
        "train_seconds": 1.0,
        "teacher_parameters": 100,
        "student_parameters": 50,
        **extra,
    }


def test_qa_card_kind_and_windows(tmp_path):
    s = summary("squad", {"f1": 71.5, "exact_match": 60.25}, max_length=384, stride=128, data="100 articles")
    write_model_card(tmp_path, s, load_recipe("kd"), task_kind("squad"))
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.pipeline_tag == "question-answering" and "AutoModelForQuestionAnswering" in card.text
    assert "AutoModelForSequenceClassification" not in card.content and "stride 128" in card.text
    assert index_metrics(card) == {"f1": 71.5, "exact_match": 60.25}
    assert card.data.eval_results[0].dataset_type == "rajpurkar/squad"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # the alias's hub id


def embedding_summary(dev: dict) -> dict:
    """What a distill-general run of an embedding student hands its card writer."""
    return {
        "teacher": "mpnet-base",
        "student": "minilm-l6 layers 0,2,4",
        "dev": dev,
        "teacher_dev": {t: {k: v + 0.05 for k, v in m.items()} for t, m in dev.items()},
        "retention": {t: 90.0 for t in dev},
        "sentences_per_second": {"teacher": 26.0, "student": 351.0},
        "teacher_parameters": 100,
        "student_parameters": 20,
        "texts": 1000,
        "teacher_cache_seconds": 3.0,
        "steps": 10,
        "train_seconds": 5.0,
        "samples_per_second": 200.0,
    }


def test_embedding_card_has_every_zero_shot_metric(tmp_path):
    dev = {"stsb-zeroshot": {"spearman": 0.81, "pearson": 0.8}, "squad-retrieval": {"mrr@10": 0.5, "recall@1": 0.4}}
    s = embedding_summary(dev)
    write_embedding_card(tmp_path, s, load_recipe("embed-mse"))
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.pipeline_tag == "sentence-similarity" and card.data.library_name == "sentence-transformers"
    assert card.data.base_model == "sentence-transformers/all-mpnet-base-v2"
    by_task = {(r.task_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert by_task == {
        ("sentence-similarity", "spearman"): 0.81,
        ("sentence-similarity", "pearson"): 0.8,
        ("text-retrieval", "mrr@10"): 0.5,
        ("text-retrieval", "recall@1"): 0.4,
    }
    assert "**13.5x**" in card.text


def test_base_model_of_a_folder_follows_its_card(tmp_path):
    (tmp_path / "README.md").write_text("---\nbase_model: org/teacher\n---\n# a teacher\n")
    assert base_model(str(tmp_path)) == "org/teacher"
    (tmp_path / "README.md").write_text("# notes, no metadata\n")
    assert base_model(str(tmp_path)) is None
    assert base_model("org/model") == "org/model"


def test_embedding_card_says_which_side_encodes_what(tmp_path):
    """A student trained into its teacher's space: the card names the teacher as the documents side, with
    the asymmetric figures the run measured; refused (not in the space yet) it says why; else nothing."""
    s = embedding_summary({"squad-retrieval": {"mrr@10": 0.5, "recall@1": 0.4, "recall@10": 0.8}})
    asym = {"recall@1": 0.45, "recall@10": 0.85, "mrr@10": 0.5512, "space_cosine": 0.81}
    write_embedding_card(
        tmp_path, {**s, "documents_by": {"teacher": "mpnet-base", "squad-retrieval": asym}}, load_recipe("embed-mse")
    )
    text = ModelCard.load(tmp_path / "README.md").text
    assert "## Search: queries by this model, documents by mpnet-base" in text
    assert "MRR@10 0.5512" in text and "--documents-by mpnet-base" in text
    refused = {"teacher": "mpnet-base", "refused": "--documents-by: the two models do not share a space"}
    write_embedding_card(tmp_path, {**s, "documents_by": refused}, load_recipe("embed-mse"))
    assert "Not usable that way yet: --documents-by: the two models" in ModelCard.load(tmp_path / "README.md").text
    write_embedding_card(tmp_path, s, load_recipe("embed-rkd"))
    assert "## Search" not in ModelCard.load(tmp_path / "README.md").text
