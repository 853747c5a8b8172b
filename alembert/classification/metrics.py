"""The official GLUE metrics of a task, computed from model outputs.

``compute_metrics(task, predictions, labels)`` returns every metric in
``task.metrics`` as a Python float: Matthews correlation ("mcc", CoLA),
accuracy, binary F1 of class 1 ("f1", MRPC/QQP), and Pearson/Spearman
correlation (STS-B). Scores are fractions (0.85), not percentages.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from alembert.data.glue import TaskSpec


def _correlation(fn, predictions, labels) -> float:
    """Pearson/Spearman; constant input has no correlation, reported as 0.0 instead of NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(predictions, labels)[0])
    return 0.0 if math.isnan(value) else value


_METRICS = {
    "mcc": lambda p, y: matthews_corrcoef(y, p),
    "accuracy": lambda p, y: accuracy_score(y, p),
    "f1": lambda p, y: f1_score(y, p, pos_label=1, average="binary", zero_division=0),
    "pearson": lambda p, y: _correlation(pearsonr, p, y),
    "spearman": lambda p, y: _correlation(spearmanr, p, y),
}


def compute_metrics(task: TaskSpec, predictions, labels) -> dict[str, float]:
    """Score ``predictions`` against ``labels`` with the task's metrics.

    ``predictions``: logits (N, C) (argmax is taken) or class ids (N,) for
    classification; scores (N,) or (N, 1) for regression. ``labels``: (N,).
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels).reshape(-1)
    if task.is_regression:
        predictions = predictions.reshape(-1).astype(np.float64)
        labels = labels.astype(np.float64)
    elif predictions.ndim == 2:
        predictions = predictions.argmax(axis=-1)
    if predictions.shape != labels.shape or len(labels) == 0:
        raise ValueError(f"compute_metrics: predictions {predictions.shape} do not match labels {labels.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. MCC of constant predictions: 0.0 plus a warning
        return {name: float(_METRICS[name](predictions, labels)) for name in task.metrics}
