"""alembert: distil BERT-family encoders into smaller, faster students.

From Python: ``alembert.finetune``, ``distill``, ``distill_general``, ``adapt_mlm``, ``evaluate``, ``export``,
``bench`` and ``frontier`` (see :mod:`alembert.api`), and ``alembert.DistillationTrainer`` for a
``transformers.Trainer`` script (see :mod:`alembert.distill.trainer`). They are imported on first
use, so ``import alembert`` (and ``alembert --help``) stays free of torch.
"""

__version__ = "0.1.0"

_LAZY = {
    "finetune": "alembert.api",
    "distill_general": "alembert.api",
    "adapt_mlm": "alembert.api",
    "evaluate": "alembert.api",
    "bench": "alembert.api",
    "Result": "alembert.api",
    "DistillationTrainer": "alembert.distill.trainer",
    "AlembertError": "alembert.errors",
}
__all__ = ["__version__", *_LAZY, "distill", "export", "frontier"]


_PACKAGES = (
    "distill",
    "export",
    "frontier",
)  # subpackages that are API functions too: calling them runs alembert.api's


def __getattr__(name: str):
    import importlib

    if name in _PACKAGES:
        return importlib.import_module(f"alembert.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alembert' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
