"""Loss terms: each recipe loss name is one self-describing :class:`Term` (see :mod:`.base`).

Every module of this package is imported here, so a term defined in a new module is
registered without editing any list.
"""

from __future__ import annotations

import importlib
import pkgutil

from alembert.terms.base import TERMS, Needs, StepInputs, Term, get_term

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["TERMS", "Needs", "StepInputs", "Term", "get_term"]
