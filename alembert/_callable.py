"""Packages that are also API functions: ``alembert.distill(...)``, ``alembert.export(...)`` and
``alembert.frontier(...)``.

``alembert.distill`` and ``alembert.export`` are subpackages (Python sets the attribute to the
package as soon as any of its modules is imported), and the Python API also wants them as
functions. A package whose module class has ``__call__`` is both: ``import alembert.distill.recipe``
works as before, and ``alembert.distill(teacher=...)`` calls :func:`alembert.api.distill`.
"""

from __future__ import annotations

import sys
import types


class CallablePackage(types.ModuleType):
    """A package module that forwards calls to the API function of its name."""

    def __call__(self, *args, **kwargs):
        from alembert import api

        return getattr(api, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def make_callable(name: str) -> None:
    sys.modules[name].__class__ = CallablePackage
