"""Turn SQuAD examples into model windows ("features") with a fast tokenizer.

Each (question, context) pair is encoded question first, context second, with only
the context truncated: a context longer than ``max_length`` tokens gives several
windows, consecutive windows sharing ``stride`` context tokens. Questions longer
than ``max_query_length`` tokens are clipped first (64, as in BERT's ``run_squad``),
so every window has room for context. Windows are not padded (padding is dynamic,
per batch); a ``length`` column holds each window's token count.

The context tokens of a window are found with the encoding's ``sequence_ids`` (the
second sequence), never with ``token_type_ids``, which some models (MPNet) lack.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from datasets import Dataset

from alembert.data.tokenize import cached_map, tokenizer_fingerprint
from alembert.errors import AlembertError

#: Columns of train features a QA model takes (``token_type_ids`` only if the tokenizer makes them).
QA_MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions")
_VERSION = "qa1"  # bump when the preprocessing changes, to invalidate cached features


def _check_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise AlembertError(
            f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer; "
            "question answering needs offsets: load it with use_fast=True "
            "(a model folder with tokenizer.json)"
        )


def _clip_questions(questions: list[str], tokenizer, max_query_length: int) -> list[str]:
    """Strip leading blanks and cut each question after its ``max_query_length``-th token."""
    questions = [q.lstrip() for q in questions]
    offsets = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [
        q if len(offs) <= max_query_length else q[: offs[max_query_length - 1][1]]
        for q, offs in zip(questions, offsets, strict=True)
    ]


def _windows(examples: dict, tokenizer, max_length: int, stride: int, max_query_length: int):
    _check_fast(tokenizer)
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - max_query_length
    if stride >= room:
        raise AlembertError(
            f"stride {stride} leaves no new context per window with max length "
            f"{max_length} and questions up to {max_query_length} tokens; pass "
            f"a stride below {room} or a larger max length"
        )
    return tokenizer(
        _clip_questions(examples["question"], tokenizer, max_query_length),
        examples["context"],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def _cls_index(input_ids: list[int], tokenizer) -> int:
    cls = tokenizer.cls_token_id
    return input_ids.index(cls) if cls is not None and cls in input_ids else 0


def prepare_train_features(
    examples: dict, tokenizer, max_length: int = 384, stride: int = 128, max_query_length: int = 64
) -> dict:
    """Windows of a batch of examples (a ``datasets`` batch: dict of lists), with labels.

    Returns the tokenizer's ``input_ids``, ``attention_mask`` (``token_type_ids`` if it
    makes them), ``start_positions`` / ``end_positions`` (the token positions of the first
    gold answer, or the [CLS] index 0 when the answer is not wholly inside the window or
    there is none) and ``length``.
    """
    enc = _windows(examples, tokenizer, max_length, stride, max_query_length)
    sample_map = enc.pop("overflow_to_sample_mapping")
    starts, ends = [], []
    for i, offsets in enumerate(enc.pop("offset_mapping")):
        cls = _cls_index(enc["input_ids"][i], tokenizer)
        answers = examples["answers"][sample_map[i]]
        seq = enc.sequence_ids(i)
        ctx = [t for t, s in enumerate(seq) if s == 1]
        if not answers["text"] or not ctx:
            starts.append(cls), ends.append(cls)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        first, last = ctx[0], ctx[-1]
        if offsets[first][0] > start_char or offsets[last][1] < end_char:
            starts.append(cls), ends.append(cls)
            continue
        s = first
        while s <= last and offsets[s][0] <= start_char:
            s += 1
        e = last
        while e >= first and offsets[e][1] >= end_char:
            e -= 1
        starts.append(s - 1), ends.append(e + 1)
    enc["start_positions"], enc["end_positions"] = starts, ends
    enc["length"] = [len(ids) for ids in enc["input_ids"]]
    return enc.data


def prepare_eval_features(
    examples: dict, tokenizer, max_length: int = 384, stride: int = 128, max_query_length: int = 64
) -> dict:
    """Windows of a batch of examples for prediction.

    Returns ``input_ids``, ``attention_mask`` (``token_type_ids``), ``length``,
    ``example_id`` (the ``id`` of the window's example) and ``offset_mapping``: per token
    its ``(start, end)`` characters in the context, ``None`` for question and special tokens.
    """
    enc = _windows(examples, tokenizer, max_length, stride, max_query_length)
    sample_map = enc.pop("overflow_to_sample_mapping")
    enc["example_id"] = [examples["id"][j] for j in sample_map]
    enc["offset_mapping"] = [
        [tuple(o) if s == 1 else None for o, s in zip(offs, enc.sequence_ids(i), strict=True)]
        for i, offs in enumerate(enc["offset_mapping"])
    ]
    enc["length"] = [len(ids) for ids in enc["input_ids"]]
    return enc.data


def squad_fingerprint(ds: Dataset) -> str:
    """A hash of the examples' ids, questions, contexts and answers."""
    h = hashlib.sha256()
    for col in ("id", "question", "context"):
        h.update("\x1e".join(ds[col]).encode())
    h.update(repr(ds["answers"]).encode())
    return h.hexdigest()[:16]


def tokenize_squad(
    ds: Dataset,
    tokenizer,
    max_length: int = 384,
    stride: int = 128,
    train: bool = True,
    max_query_length: int = 64,
    cache: Path | None = None,
) -> Dataset:
    """Map SQuAD examples (columns of :mod:`alembert.data.squad`) to windows through
    ``datasets.map``: :func:`prepare_train_features` if ``train`` else
    :func:`prepare_eval_features`. Cached under ``<cache>/tokenized/squad-*.arrow``, keyed
    by the mode, the tokenizer (and its ``model_input_names``), ``max_length``, ``stride``,
    ``max_query_length`` and the data."""
    _check_fast(tokenizer)
    mode = "train" if train else "eval"
    inputs = hashlib.sha256(repr(tokenizer.model_input_names).encode()).hexdigest()[:6]
    key = (
        f"squad-{_VERSION}-{mode}-{tokenizer_fingerprint(tokenizer)}-{inputs}-{max_length}"
        f"-{stride}-{max_query_length}-{squad_fingerprint(ds)}"
    )
    prepare = prepare_train_features if train else prepare_eval_features
    kwargs = {"tokenizer": tokenizer, "max_length": max_length, "stride": stride, "max_query_length": max_query_length}
    return cached_map(ds, prepare, key, f"tokenising SQuAD ({mode})", cache, fn_kwargs=kwargs)
