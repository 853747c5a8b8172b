"""Model cards as ``huggingface_hub.ModelCard``: the metadata (library, pipeline tag, tags, base
model, dev metrics as ``model-index``) is a ``ModelCardData``, so it is valid YAML the Hub and
``ModelCard.load`` read, and the prose below it is plain markdown. The writers (distill/card.py,
embedding/card.py) say what to put in; this module says how it is written (atomically)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from alembert.files import write_text_atomic

# Hub ids of the packaged aliases (alembert/models/packaged.py), for base_model.
ALIAS_HUB_IDS = {
    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2",
    "mpnet-base": "sentence-transformers/all-mpnet-base-v2",
}

# Where a task's dev metrics come from: (dataset id, name, config, split, task type).
GLUE_NAMES = {
    "cola": "CoLA",
    "sst2": "SST-2",
    "mrpc": "MRPC",
    "stsb": "STS-B",
    "qqp": "QQP",
    "mnli": "MNLI",
    "mnli-mm": "MNLI-mm",
    "qnli": "QNLI",
    "rte": "RTE",
    "wnli": "WNLI",
}
EMBEDDING_DATASETS = {
    "stsb-zeroshot": (
        "nyu-mll/glue",
        "STS-B (zero-shot cosine similarity)",
        "stsb",
        "validation",
        "sentence-similarity",
    ),
    "squad-retrieval": (
        "rajpurkar/squad",
        "SQuAD v1.1 (question -> paragraph retrieval)",
        None,
        "validation",
        "text-retrieval",
    ),
}


def base_model(name: str | None) -> str | None:
    """A Hub id for ``name``: an alias's, a folder's own card's ``base_model``, or ``name`` itself
    when it is no local path (then it is a hub id). None when nothing names one."""
    if not name:
        return None
    if name in ALIAS_HUB_IDS:
        return ALIAS_HUB_IDS[name]
    path = Path(name).expanduser()
    if path.exists():
        card = path / "README.md"
        if card.is_file():
            try:
                found = ModelCard.load(card).data.base_model
            except Exception:  # a folder's hand-written README need not be a model card
                return None
            return found if isinstance(found, str) else None
        return None
    return name


def dataset_of(task: str) -> tuple[str, str, str | None, str, str]:
    """(dataset id, name, config, split, task type) of a task's dev metrics."""
    if task in EMBEDDING_DATASETS:
        return EMBEDDING_DATASETS[task]
    if task == "squad":
        return "rajpurkar/squad", "SQuAD v1.1", None, "validation", "question-answering"
    if task in GLUE_NAMES:
        config = "mnli" if task == "mnli-mm" else task
        split = (
            "validation_mismatched" if task == "mnli-mm" else "validation_matched" if task == "mnli" else "validation"
        )
        return "nyu-mll/glue", f"GLUE {GLUE_NAMES[task]}", config, split, "text-classification"
    return "custom", f"{task} (your own dev file)", None, "dev", "text-classification"


def eval_results(task: str, metrics: dict) -> list[EvalResult]:
    """One ``model-index`` entry per numeric metric of ``task``'s dev set."""
    dataset, name, config, split, kind = dataset_of(task)
    return [
        EvalResult(
            task_type=kind,
            dataset_type=dataset,
            dataset_name=name,
            dataset_config=config,
            dataset_split=split,
            metric_type=metric,
            metric_name=metric,
            metric_value=float(value),
        )
        for metric, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def write_card(
    out: Path,
    body: str,
    *,
    model_name: str,
    library_name: str,
    pipeline_tag: str,
    tags: list[str],
    base: str | None,
    results: list[EvalResult],
) -> ModelCard:
    """``out/README.md``: the metadata as a ModelCardData, then ``body`` (markdown)."""
    data = ModelCardData(
        model_name=model_name,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=tags,
        base_model=base,
        eval_results=results or None,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    write_text_atomic(out / "README.md", str(card))
    return card
