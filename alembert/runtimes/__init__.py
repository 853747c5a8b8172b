"""Runtimes: each library that runs a model folder at inference (PyTorch, ONNX Runtime) is one
:class:`Runtime` (see :mod:`.base`), and every command loads a model through :func:`load_any` /
:func:`load_any_embedding` instead of asking which format a folder holds.

Every module of this package is imported here, so a runtime defined in a new module is registered
without editing any list or any command.
"""

from __future__ import annotations

from alembert.plugins import import_submodules
from alembert.runtimes.base import (
    PYTORCH_FORMAT,
    RUNTIMES,
    ArrayModel,
    Runtime,
    RuntimeModel,
    get_runtime,
    known_formats,
    load_any,
    load_any_embedding,
    probe_order,
    recorded_format,
    runtime_for,
)

import_submodules(__name__, __path__)

__all__ = [
    "PYTORCH_FORMAT",
    "RUNTIMES",
    "ArrayModel",
    "Runtime",
    "RuntimeModel",
    "get_runtime",
    "known_formats",
    "load_any",
    "load_any_embedding",
    "probe_order",
    "recorded_format",
    "runtime_for",
]
