"""Dev-set evaluation of a sequence-classification model with the task's official metrics."""

from __future__ import annotations

import numpy as np

from alembert.classification.metrics import compute_metrics
from alembert.classification.predict import predict_logits
from alembert.data.glue import TaskSpec


def evaluate_model(model, tokenizer, task: TaskSpec, dev_tokenized, batch_size: int = 128) -> dict[str, float]:
    logits = predict_logits(model, dev_tokenized, tokenizer, batch_size)
    labels = np.asarray(dev_tokenized["labels"])
    preds = logits[:, 0] if task.is_regression else logits
    return compute_metrics(task, preds, labels)
