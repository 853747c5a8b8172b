"""Teacher and student with different tokenizers: two tokenisations of the same text.

When the two tokenizers share a vocabulary (:func:`same_tokenization`), one tokenisation
serves both models. Otherwise :func:`tokenize_two` tokenises the raw text with each, the
student's columns under their usual names and the teacher's as ``teacher_*``;
:class:`TwoTokenizerCollator` pads each side with its own pad id. Which teacher position
matches which student position is :mod:`alembert.distill.alignment`'s business.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from transformers import DataCollatorWithPadding

from alembert.data.batching import batched_loader
from alembert.data.tokenize import cached_map, clip, data_fingerprint, tokenizer_fingerprint

TEACHER_PREFIX = "teacher_"
_STUDENT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels", "idx")
_TEACHER_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def same_tokenization(teacher_tok, student_tok) -> bool:
    """True when both tokenizers turn any text into the same ids (one tokenisation serves both)."""
    if teacher_tok is student_tok:
        return True
    return teacher_tok.get_vocab() == student_tok.get_vocab() and tokenizer_fingerprint(
        teacher_tok
    ) == tokenizer_fingerprint(student_tok)


# ----------------------------------------------------------------------------- tokenising


def tokenize_two(
    ds: Dataset,
    teacher_tok,
    student_tok,
    max_length: int,
    cache: Path | None = None,
    teacher_max_length: int | None = None,
) -> Dataset:
    """Tokenise ``text_a`` (``text_b``, ``label``) with each tokenizer, both truncated to ``max_length``.

    Pairs that reach ``max_length`` lose one more text piece on MPNet's side (its
    ``</s></s>`` takes a place), so they no longer align; ``teacher_max_length``
    (e.g. ``max_length + 1``) gives the teacher the room to keep the same text.

    Columns: ``input_ids``, ``attention_mask`` (``token_type_ids``), ``labels``, ``length``
    for the student; ``teacher_input_ids``, ``teacher_attention_mask``
    (``teacher_token_type_ids`` when the teacher's tokenizer makes them). Unpadded;
    cached under ``<cache>/tokenized/two-<key>.arrow``, keyed by both tokenizers,
    the max length and the data.
    """
    teacher_max = teacher_max_length or max_length
    key = (
        f"two-{tokenizer_fingerprint(student_tok)}-{tokenizer_fingerprint(teacher_tok)}-"
        f"{max_length}-{teacher_max}-{data_fingerprint(ds)}"
    )
    pair = "text_b" in ds.column_names

    def encode(batch):
        bound = max(max_length, teacher_max)
        first, second = clip(batch["text_a"], bound), clip(batch["text_b"], bound) if pair else None
        out = dict(student_tok(first, second, truncation=True, max_length=max_length))
        out["length"] = [len(ids) for ids in out["input_ids"]]
        teacher = teacher_tok(first, second, truncation=True, max_length=teacher_max)
        out.update({TEACHER_PREFIX + k: v for k, v in teacher.items() if k in _TEACHER_COLUMNS})
        if "label" in batch:
            out["labels"] = batch["label"]
        return out

    return cached_map(ds, encode, key, "tokenising (teacher and student)", cache)


class TwoTokenizerCollator:
    """Pad the student's columns and the ``teacher_*`` columns separately, each with its own pad id."""

    def __init__(self, teacher_tok, student_tok):
        self.teacher = DataCollatorWithPadding(teacher_tok)
        self.student = DataCollatorWithPadding(student_tok)

    def __call__(self, features: list[dict]) -> dict:
        student = [{k: v for k, v in f.items() if k in _STUDENT_COLUMNS} for f in features]
        teacher = [
            {k[len(TEACHER_PREFIX) :]: v for k, v in f.items() if k.startswith(TEACHER_PREFIX)} for f in features
        ]
        batch = dict(self.student(student))
        batch.update({TEACHER_PREFIX + k: v for k, v in self.teacher(teacher).items()})
        return batch


def two_tokenizer_columns(ds: Dataset) -> list[str]:
    """The model columns (both sides) of a :func:`tokenize_two` dataset."""
    keep = set(_STUDENT_COLUMNS) | {TEACHER_PREFIX + c for c in _TEACHER_COLUMNS}
    return [c for c in ds.column_names if c in keep]


def two_tokenizer_loader(ds, teacher_tok, student_tok, batch_size: int, seed: int, group_by_length: bool = True):
    """(DataLoader, sampler) over a :func:`tokenize_two` dataset, batched like every training loader."""
    return batched_loader(
        ds, two_tokenizer_columns(ds), TwoTokenizerCollator(teacher_tok, student_tok), batch_size, seed, group_by_length
    )
