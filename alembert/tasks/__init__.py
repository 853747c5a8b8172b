"""Task kinds: each family of tasks (classification, extractive QA, sentence embeddings) is one
:class:`TaskKind` (see :mod:`.base`), and every command reaches its task through
:func:`task_kind` instead of branching on the task's name.

Every module of this package is imported here, so a kind defined in a new module is
registered without editing any list or any command.
"""

from __future__ import annotations

from alembert.plugins import import_submodules
from alembert.tasks.base import KINDS, Evaluation, TaskKind, kinds, known_tasks, task_kind

import_submodules(__name__, __path__)

__all__ = ["KINDS", "Evaluation", "TaskKind", "kinds", "known_tasks", "task_kind"]
