"""Where alembert looks for things: the one home of its environment variables.

- ``ALEMBERT_CACHE``: unpacked packaged models, tokenised data, teacher outputs and embeddings
  (default ``~/.cache/alembert``);
- ``ALEMBERT_DATA``: the ``glue_data`` folder (default ``./shared/data/glue_data`` or
  ``../shared/data/glue_data``, whichever exists);
- ``ALEMBERT_SQUAD``: the SQuAD v1.1 dev file (default ``shared/data/squad/dev-v1.1.json`` here or
  one folder up).

A flag (``--data-dir``, ``--dev-file``) always wins over these; they only set the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where alembert keeps unpacked models and tokenised data (``ALEMBERT_CACHE``)."""
    return Path(os.environ.get("ALEMBERT_CACHE") or Path.home() / ".cache" / "alembert")


def _shared(relative: str, is_file: bool) -> Path:
    """``./shared/data/<relative>`` or ``../shared/data/<relative>``, whichever exists (else the latter)."""
    for candidate in (Path("shared/data") / relative, Path("../shared/data") / relative):
        if candidate.is_file() if is_file else candidate.is_dir():
            return candidate
    return Path("../shared/data") / relative


def default_data_dir() -> Path:
    """The ``glue_data`` folder: ``$ALEMBERT_DATA`` if set, else the first existing of
    ``./shared/data/glue_data`` and ``../shared/data/glue_data`` (the latter if neither exists)."""
    if os.environ.get("ALEMBERT_DATA"):
        return Path(os.environ["ALEMBERT_DATA"])
    return _shared("glue_data", is_file=False)


def default_squad_file() -> Path:
    """The SQuAD v1.1 dev file: ``$ALEMBERT_SQUAD`` if set, else the first existing of
    ``./shared/data/squad/dev-v1.1.json`` and ``../shared/data/squad/dev-v1.1.json``."""
    if os.environ.get("ALEMBERT_SQUAD"):
        return Path(os.environ["ALEMBERT_SQUAD"])
    return _shared("squad/dev-v1.1.json", is_file=True)
