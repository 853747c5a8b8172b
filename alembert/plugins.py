"""Registries without a hand-kept list: a registry package imports every module of its own, and each
module's subclasses register themselves when they are defined (``__init_subclass__``). So adding a loss
term, a task kind, a student builder or a runtime is adding one file (terms/, tasks/, students/, runtimes/)."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package: str, path) -> None:
    """Import every module of ``package`` (its ``__name__``; ``path``: its ``__path__``) but ``base``,
    the module that defines the registry itself and is imported first."""
    for info in pkgutil.iter_modules(path):
        if info.name != "base":
            importlib.import_module(f"{package}.{info.name}")
