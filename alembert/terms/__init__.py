"""Loss terms: each recipe loss name is one self-describing :class:`Term` (see :mod:`.base`).

Every module of this package is imported here, so a term defined in a new module is
registered without editing any list.
"""

from __future__ import annotations

from alembert.plugins import import_submodules
from alembert.terms.base import TERMS, Needs, StepInputs, Term, get_term

import_submodules(__name__, __path__)

__all__ = ["TERMS", "Needs", "StepInputs", "Term", "get_term"]
