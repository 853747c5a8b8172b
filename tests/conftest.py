"""Shared fixtures: tiny random models (real BERT vocabulary) and the real GLUE data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GLUE = Path(os.environ.get("ALEMBERT_DATA") or REPO.parent / "shared" / "data" / "glue_data")


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


def pytest_collection_modifyitems(items):
    """Mark end-to-end tests (they call a command) ``cli``, so ``pytest -m "not cli"`` is the fast unit tier."""
    for item in items:
        code = getattr(getattr(item, "function", None), "__code__", None)
        if code is not None and {"run_cli", "subprocess"} & set(code.co_names):
            item.add_marker(pytest.mark.cli)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from alembert.cli.main import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
