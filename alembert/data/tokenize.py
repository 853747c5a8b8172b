"""Tokenise examples through ``datasets.map`` with an on-disk cache.

The cache file is keyed by the tokenizer's full definition, the max length and
the text of the examples, so any change of any of them tokenises again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from datasets import Dataset

from alembert.models.packaged import cache_dir

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels", "length")

#: characters kept per token of max length before a text is tokenised. WordPiece makes one [UNK] of any
#: word over 100 characters, so the first ``100 * max_length`` characters hold the first ``max_length``
#: tokens of any text but one padded with whitespace runs; a 50 MB field then costs what 12,800 characters do
#: (tokenising it whole took 70 s and 7 GB before truncation at 32 tokens).
CHARS_PER_TOKEN = 100


def clip(texts, max_length: int):
    """``texts`` (a list, or None) cut to :data:`CHARS_PER_TOKEN` x ``max_length`` characters each,
    so a huge field costs no more than its first ``max_length`` tokens do."""
    if texts is None:
        return None
    bound = CHARS_PER_TOKEN * max_length
    return [t[:bound] if isinstance(t, str) and len(t) > bound else t for t in texts]


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's definition (vocabulary, normaliser, specials), not its call-time state."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        definition.pop("truncation", None)  # set by each call's max_length: not part of the identity
        definition.pop("padding", None)
        h.update(json.dumps(definition, sort_keys=True).encode())
    else:
        h.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    h.update(repr(sorted(tokenizer.special_tokens_map.items())).encode())
    h.update(type(tokenizer).__name__.encode())
    return h.hexdigest()[:16]


def data_fingerprint(ds: Dataset, columns: tuple[str, ...] = ("text_a", "text_b", "label")) -> str:
    """Hash of the content of ``columns`` (those present), in row order."""
    h = hashlib.sha256()
    for col in columns:
        if col in ds.column_names:
            h.update(col.encode())
            h.update("\x1e".join(map(str, ds[col])).encode())
    return h.hexdigest()[:16]


def cached_map(
    ds: Dataset, fn, key: str, desc: str, cache: Path | None = None, subdir: str = "tokenized", **kwargs
) -> Dataset:
    """``ds.map(fn, batched=True)`` replacing every column, cached in ``<cache>/<subdir>/<key>.arrow``."""
    folder = Path(cache or cache_dir()) / subdir
    folder.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("batch_size", 1000)
    kwargs.setdefault("remove_columns", ds.column_names)
    path = folder / f"{key}.arrow"
    with cache_write_note(path, desc):
        return ds.map(fn, batched=True, cache_file_name=str(path), load_from_cache_file=True, desc=desc, **kwargs)


@contextmanager
def cache_write_note(path: Path, what: str):
    """Under several processes, one stderr line when the block creates the cache file ``path``
    (not when it reads it): the log then shows that one process wrote it. A single process stays
    quiet, so that a refused run's stderr is its one error line."""
    existed = path.exists()
    yield
    if not existed and path.exists() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print(
            f"alembert: cache written ({what}): {path} (process {os.environ.get('RANK', '0')})",
            file=sys.stderr,
            flush=True,
        )


def tokenize_dataset(ds: Dataset, tokenizer, max_length: int, cache: Path | None = None) -> Dataset:
    """Add ``input_ids``, ``attention_mask`` (``token_type_ids``), ``labels``, ``length``.

    Texts stay unpadded (padding is dynamic, per batch). The result is cached under
    ``<cache>/tokenized/<key>.arrow``.
    """
    key = f"{tokenizer_fingerprint(tokenizer)}-{max_length}-{data_fingerprint(ds)}"
    pair = "text_b" in ds.column_names

    def encode(batch):
        a, b = clip(batch["text_a"], max_length), clip(batch["text_b"], max_length) if pair else None
        enc = tokenizer(a, b, truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        if "label" in batch:
            enc["labels"] = batch["label"]
        return enc

    return cached_map(ds, encode, key, "tokenising", cache)
