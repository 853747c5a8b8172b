"""Sequence classification and regression (the GLUE tasks and your own CSV/TSV/JSONL files):
its evaluation (batched prediction, the official metrics), its fine-tuning and distillation runs
and its data for distillation (one or two tokenizers, transfer text).

The files themselves are read by :mod:`alembert.data` (GLUE TSV quirks, your own files, the
label set in :mod:`alembert.data.glue`), since every kind reads them: the embedding kind takes
GLUE sentences as transfer text. The kind's entry points are :mod:`alembert.tasks.classification`.
"""
