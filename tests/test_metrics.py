"""compute_metrics checked against hand-worked values and against sklearn/scipy directly."""

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from alembert.classification.metrics import compute_metrics
from alembert.data.glue import get_task

# 8 examples: TP=3, FN=1, TN=2, FP=2.
LABELS = [1, 1, 1, 1, 0, 0, 0, 0]
PREDS = [1, 1, 1, 0, 0, 0, 1, 1]


def test_mcc_by_hand():
    tp, fn, tn, fp = 3, 1, 2, 2
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert expected == pytest.approx(4 / math.sqrt(240))
    assert compute_metrics(get_task("cola"), PREDS, LABELS) == {"mcc": pytest.approx(expected)}


def test_f1_and_accuracy_by_hand():
    precision, recall = 3 / 5, 3 / 4
    result = compute_metrics(get_task("mrpc"), PREDS, LABELS)
    assert list(result) == ["f1", "accuracy"]
    assert result["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(5 / 8)


def test_logits_take_argmax():
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5]])
    assert compute_metrics(get_task("sst2"), logits, [1, 0, 0]) == {"accuracy": pytest.approx(2 / 3)}
    three = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5], [0, 5, 0]], dtype=np.float32)
    assert compute_metrics(get_task("mnli"), three, [0, 1, 2, 2])["accuracy"] == 0.75


def test_pearson_spearman_by_hand():
    # x = 1,2,3; y = 1,2,4: r = 3 / sqrt(2 * 42/9); ranks agree, so Spearman is 1.
    result = compute_metrics(get_task("stsb"), np.array([[1.0], [2.0], [3.0]]), [1.0, 2.0, 4.0])
    assert result["pearson"] == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    assert result["spearman"] == pytest.approx(1.0)


def test_constant_predictions_give_zero_not_nan():
    result = compute_metrics(get_task("stsb"), [2.5, 2.5, 2.5, 2.5], [0.0, 1.0, 4.0, 5.0])
    assert result == {"pearson": 0.0, "spearman": 0.0}
    assert compute_metrics(get_task("cola"), [1, 1, 1, 1], [0, 1, 0, 1]) == {"mcc": 0.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn_and_scipy_on_random_data(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=200)
    logits = rng.normal(size=(200, 2)) + np.eye(2)[labels]  # better than chance
    preds = logits.argmax(axis=1)
    assert compute_metrics(get_task("cola"), logits, labels)["mcc"] == pytest.approx(matthews_corrcoef(labels, preds))
    qqp = compute_metrics(get_task("qqp"), preds, labels)
    assert qqp["f1"] == pytest.approx(f1_score(labels, preds))
    assert qqp["accuracy"] == pytest.approx(accuracy_score(labels, preds))

    gold = rng.uniform(0, 5, size=200)
    scores = gold + rng.normal(size=200)
    result = compute_metrics(get_task("stsb"), scores, gold)
    assert result["pearson"] == pytest.approx(pearsonr(scores, gold)[0])
    assert result["spearman"] == pytest.approx(spearmanr(scores, gold)[0])
    assert all(type(v) is float for v in (*result.values(), *qqp.values()))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="do not match"):
        compute_metrics(get_task("sst2"), [0, 1, 1], [0, 1])
    with pytest.raises(ValueError):
        compute_metrics(get_task("stsb"), np.zeros((3, 2)), [0.0, 1.0, 2.0])
