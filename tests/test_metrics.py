"""Metrics from a confusion matrix agree with scikit-learn, including zero-division cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from attnclf.metrics import (
    classification_metrics,
    confusion_matrix,
    format_metrics,
    metrics_from_confusion,
)

CLASSES = ["Business", "Sci/Tech", "Sports", "World"]


def assert_matches_sklearn(y_true: list[int], y_pred: list[int], classes: list[str]) -> dict:
    labels = list(range(len(classes)))
    metrics = classification_metrics(y_true, y_pred, classes)
    overall = metrics["overall"]
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, average="weighted", labels=labels, zero_division=0
    )
    assert overall["precision"] == pytest.approx(p)
    assert overall["recall"] == pytest.approx(r)
    assert overall["f1"] == pytest.approx(f)
    _, _, macro_f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", labels=labels, zero_division=0
    )
    assert overall["macro_f1"] == pytest.approx(macro_f1)
    assert overall["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert overall["num_samples"] == len(y_true)
    ps, rs, fs, ns = precision_recall_fscore_support(
        y_true, y_pred, average=None, labels=labels, zero_division=0
    )
    for i, name in enumerate(classes):
        c = metrics["class"][name]
        assert c["precision"] == pytest.approx(ps[i])
        assert c["recall"] == pytest.approx(rs[i])
        assert c["f1"] == pytest.approx(fs[i])
        assert c["num_samples"] == ns[i]
    assert metrics["confusion_matrix"]["matrix"] == (
        sk_confusion_matrix(y_true, y_pred, labels=labels).tolist()
    )
    return metrics


def test_confusion_matrix_rows_are_true_classes() -> None:
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.sum(axis=1).tolist() == [2, 1, 3]  # support per true class


def test_known_example() -> None:
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    y_pred = [0, 0, 1, 1, 1, 2, 3, 2, 3, 0]
    metrics = assert_matches_sklearn(y_true, y_pred, CLASSES)
    assert metrics["overall"]["accuracy"] == pytest.approx(0.7)
    assert metrics["class"]["Business"]["precision"] == pytest.approx(2 / 3)
    assert metrics["class"]["Business"]["recall"] == pytest.approx(2 / 3)
    assert metrics["class"]["Sci/Tech"]["recall"] == 1.0
    assert metrics["confusion_matrix"]["labels"] == CLASSES


def test_perfect_predictions() -> None:
    y = [0, 1, 2, 3, 3, 2]
    metrics = assert_matches_sklearn(y, y, CLASSES)
    assert metrics["overall"]["f1"] == metrics["overall"]["accuracy"] == 1.0


def test_class_never_predicted_scores_zero() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 1]  # class 2 is never predicted
    metrics = assert_matches_sklearn(y_true, y_pred, ["a", "b", "c"])
    assert metrics["class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "num_samples": 2}


def test_class_absent_from_truth_and_predictions() -> None:
    metrics = assert_matches_sklearn([0, 1, 1], [0, 1, 0], ["a", "b", "never"])
    assert metrics["class"]["never"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "num_samples": 0,
    }


def test_empty_input_is_all_zero() -> None:
    metrics = metrics_from_confusion(np.zeros((2, 2), dtype=int), ["a", "b"])
    assert metrics["overall"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "accuracy": 0.0,
        "macro_f1": 0.0,
        "num_samples": 0,
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_labels_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 7))
    y_true = rng.integers(0, n_classes, size=int(rng.integers(1, 300))).tolist()
    # mostly right, with some classes under-predicted
    y_pred = [t if rng.random() < 0.6 else int(rng.integers(0, n_classes - 1)) for t in y_true]
    assert_matches_sklearn(y_true, y_pred, [f"c{i}" for i in range(n_classes)])


def test_metrics_from_confusion_matches_label_version() -> None:
    y_true = [0, 1, 2, 3, 0, 1]
    y_pred = [0, 2, 2, 3, 1, 1]
    cm = confusion_matrix(y_true, y_pred, 4)
    assert metrics_from_confusion(cm, CLASSES) == classification_metrics(y_true, y_pred, CLASSES)


def test_values_are_plain_python_types() -> None:
    metrics = classification_metrics([0, 1], [0, 0], ["a", "b"])
    assert type(metrics["overall"]["f1"]) is float
    assert type(metrics["overall"]["num_samples"]) is int
    assert type(metrics["class"]["a"]["num_samples"]) is int
    assert all(type(v) is int for row in metrics["confusion_matrix"]["matrix"] for v in row)


def test_format_metrics_lists_every_class() -> None:
    text = format_metrics(classification_metrics([0, 1, 2, 3], [0, 1, 2, 2], CLASSES))
    for name in ("weighted", *CLASSES):
        assert name in text
    assert "accuracy 0.7500" in text
