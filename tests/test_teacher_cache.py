"""Teacher-output cache: keyed by everything that changes the outputs; same loss as online."""

import pytest
import torch
from datasets import Dataset

from alembert.data.batching import train_loader
from alembert.data.glue import get_task
from alembert.data.tokenize import tokenize_dataset
from alembert.distill.module import DistillModule, cacheable
from alembert.distill.recipe import load_recipe
from alembert.distill.teacher_cache import build_cache, cache_key
from alembert.models.load import load_classifier
from alembert.models.student import student_from_teacher

TEXTS = [
    "a fine film",
    "dull and long",
    "the best acting this year",
    "not good at all",
    "a mess",
    "charming",
    "too slow",
    "great fun",
]


@pytest.fixture(scope="module")
def setup(tiny_bert, bert_tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    teacher = load_classifier(tiny_bert, get_task("sst2")).eval()
    raw = Dataset.from_dict({"text_a": TEXTS, "label": [1, 0, 1, 0, 0, 1, 0, 1]})
    ds = tokenize_dataset(raw, bert_tokenizer, 16, tmp_path_factory.mktemp("tok"))
    return teacher, raw, ds


def test_key_changes_with_teacher_data_tokenizer_and_length(setup, bert_tokenizer, tmp_path):
    teacher, raw, ds = setup
    base = cache_key(teacher, ds, bert_tokenizer, 16, [2])
    assert base == cache_key(teacher, ds, bert_tokenizer, 16, [2])
    other_teacher = load_classifier(teacher.config._name_or_path or teacher.name_or_path, get_task("sst2"))
    with torch.no_grad():
        other_teacher.classifier.bias.add_(1.0)
    assert cache_key(other_teacher, ds, bert_tokenizer, 16, [2]) != base
    other_data = tokenize_dataset(raw.map(lambda r: {"text_a": r["text_a"] + " !"}), bert_tokenizer, 16, tmp_path)
    assert cache_key(teacher, other_data, bert_tokenizer, 16, [2]) != base
    other_tok = bert_tokenizer.__class__.from_pretrained(teacher.name_or_path, do_lower_case=False)
    assert cache_key(teacher, ds, other_tok, 16, [2]) != base
    assert cache_key(teacher, ds, bert_tokenizer, 32, [2]) != base
    assert cache_key(teacher, ds, bert_tokenizer, 16, [1, 2]) != base
    assert cache_key(teacher, ds, bert_tokenizer, 16, [2], torch.bfloat16) != base  # a bf16 run's teacher


def test_bf16_cache_is_its_own_and_close_to_full_precision(setup, bert_tokenizer, tmp_path):
    teacher, _, ds = setup
    full = build_cache(teacher, ds, bert_tokenizer, 16, [2], 3, tmp_path)
    half = build_cache(teacher, ds, bert_tokenizer, 16, [2], 3, tmp_path, autocast=torch.bfloat16)
    assert half.folder != full.folder
    assert half.logits.dtype == full.logits.dtype == "float32"
    assert not (half.logits == full.logits).all()  # really computed under autocast
    assert abs(half.logits - full.logits).max() < 0.1


@pytest.mark.parametrize("recipe", ["kd", "pkd-skip"])
def test_cached_and_online_teacher_give_the_same_loss(setup, bert_tokenizer, tmp_path, recipe):
    teacher, _, ds = setup
    stage = load_recipe(recipe).stages[0]
    assert cacheable(stage)
    student = student_from_teacher(teacher, [0, 2]).eval()
    online = DistillModule(student, teacher, stage)
    cached = DistillModule(
        student,
        teacher,
        stage,
        cache=build_cache(teacher, ds, bert_tokenizer, 16, online.teacher_layers(), 3, tmp_path),
    )
    loader, _ = train_loader(ds.add_column("idx", list(range(len(ds)))), bert_tokenizer, 4, seed=0)
    for batch in loader:
        a, terms_a = online(batch)
        b, terms_b = cached(batch)
        assert torch.allclose(a, b, atol=1e-5)
        assert terms_a.keys() == terms_b.keys()
    assert (
        build_cache(teacher, ds, bert_tokenizer, 16, online.teacher_layers(), 3, tmp_path).folder == cached.cache.folder
    )  # reused


def test_attention_stages_are_not_cached():
    assert not cacheable(load_recipe("tinybert").stages[0]) and cacheable(load_recipe("tinybert").stages[1])
    assert not cacheable(load_recipe("distilbert").stages[0]) and not cacheable(load_recipe("ce").stages[0])
