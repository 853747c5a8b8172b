"""Task and general distillation. Calling the package, ``alembert.distill(...)``, runs
:func:`alembert.api.distill` (see alembert/_callable.py)."""

from alembert._callable import make_callable

make_callable(__name__)
