"""ONNX and web exports. Calling the package, ``alembert.export(...)``, runs
:func:`alembert.api.export` (see alembert/_callable.py)."""

from alembert._callable import make_callable

make_callable(__name__)
