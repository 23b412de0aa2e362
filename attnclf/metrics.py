"""Classification metrics from a confusion matrix, in the lesson's `metrics.json` layout."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts [C, C]: rows are true classes, columns predicted classes."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (scikit-learn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros(num.shape, dtype=float), where=den > 0)


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support of each class of a confusion matrix."""
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    precision = _ratio(tp, cm.sum(axis=0).astype(float))
    recall = _ratio(tp, support.astype(float))
    return precision, recall, _ratio(2 * precision * recall, precision + recall), support


def overall_metrics(cm: np.ndarray) -> dict:
    """Weighted precision, recall and F1, accuracy, macro F1 and sample count of a matrix."""
    cm = np.asarray(cm, dtype=np.int64)
    precision, recall, f1, support = _per_class(cm)
    total = int(support.sum())
    weights = support / total if total else np.zeros(len(support))
    return {
        "precision": float(precision @ weights),
        "recall": float(recall @ weights),
        "f1": float(f1 @ weights),
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "num_samples": total,
    }


def calibration_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> np.ndarray:
    """Per bin (k/bins, (k+1)/bins] of the top probability: texts, correct ones and summed
    confidence, [3, bins]; bins of several shards add up."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(len(labels), -1)
    confidence = probabilities.max(axis=1) if len(labels) else np.zeros(0)
    correct = probabilities.argmax(axis=1) == np.asarray(labels) if len(labels) else confidence
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    return np.stack(
        [
            np.bincount(which, minlength=bins),
            np.bincount(which, correct.astype(np.float64), minlength=bins),
            np.bincount(which, confidence, minlength=bins),
        ]
    ).astype(np.float64)


def error_from_bins(stats: np.ndarray) -> float:
    """Expected calibration error from `calibration_bins` (summed over shards)."""
    total = stats[0].sum()
    return float(np.abs(stats[1] - stats[2]).sum() / total) if total else 0.0


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): over `bins` equal-width bins of the top
    probability, the mean |accuracy - confidence| weighted by the share of texts in each bin."""
    return error_from_bins(calibration_bins(probabilities, labels, bins))


def metrics_from_confusion(cm: np.ndarray, classes: Sequence[str]) -> dict:
    """Overall (weighted and macro), per-class metrics and the confusion matrix itself."""
    cm = np.asarray(cm, dtype=np.int64)
    precision, recall, f1, support = _per_class(cm)
    return {
        "overall": overall_metrics(cm),
        "class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "num_samples": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": {"labels": list(classes), "matrix": cm.tolist()},
    }


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> dict:
    """`metrics_from_confusion` for label-index sequences."""
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, len(classes)), classes)


def format_metrics(metrics: dict) -> str:
    """A short results table: overall scores, then one row per class."""
    o = metrics["overall"]
    lines = [
        f"{'':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'n':>7}",
        f"{'weighted':<20} {o['precision']:>9.4f} {o['recall']:>9.4f} {o['f1']:>9.4f} "
        f"{o['num_samples']:>7}",
    ]
    for name, c in metrics["class"].items():
        lines.append(
            f"{name:<20} {c['precision']:>9.4f} {c['recall']:>9.4f} {c['f1']:>9.4f} "
            f"{c['num_samples']:>7}"
        )
    lines.append(f"accuracy {o['accuracy']:.4f}   macro f1 {o['macro_f1']:.4f}")
    return "\n".join(lines)
