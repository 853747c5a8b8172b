"""Student builders: each way to make a student (a checkpoint, a slice of layers, a random init
of a new shape, ...) is one self-registering :class:`Builder` (see :mod:`.base`).

Every module of this package is imported here, so a builder defined in a new module is
registered without editing any list or any command.
"""

from __future__ import annotations

from alembert.plugins import import_submodules
from alembert.students.base import (
    BUILDERS,
    Builder,
    BuiltStudent,
    Offer,
    Request,
    StudentData,
    build_student,
    checkpoint_as_is,
    student_builder,
)
from alembert.students.vocabulary import check_same_vocabulary, student_tokenizer

import_submodules(__name__, __path__)

__all__ = [
    "BUILDERS",
    "Builder",
    "BuiltStudent",
    "Offer",
    "Request",
    "StudentData",
    "build_student",
    "check_same_vocabulary",
    "checkpoint_as_is",
    "student_builder",
    "student_tokenizer",
]
