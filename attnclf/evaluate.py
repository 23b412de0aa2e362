"""`attnclf evaluate` as a library call: score a trained run on a labelled file, no retraining."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from attnclf.data.read import read_labelled
from attnclf.errors import UserError
from attnclf.metrics import calibration_error, classification_metrics
from attnclf.predict.torch_backend import Predictor

log = logging.getLogger(__name__)


def evaluate_run(
    run_dir: str | Path,
    data_path: str | Path,
    text_column: str | None = None,
    label_column: str | None = None,
) -> dict:
    """Metrics (the layout of a run's metrics.json) of the run at `run_dir` on a labelled file,
    read as the run's data config says but with `text_column` and `label_column` when given."""
    predictor = Predictor.from_run(run_dir)
    labels = predictor.run.labels
    data = predictor.run.config.data
    columns = dataclasses.replace(
        data,
        text_column=text_column or data.text_column,
        label_column=label_column or data.label_column,
    )
    frame = read_labelled(data_path, columns).frame
    unseen = labels.unknown(frame["label"])
    if unseen:
        raise UserError(
            f"{data_path} has label(s) that the run never saw: {', '.join(map(repr, unseen))}; "
            f"the run at {run_dir} knows only {', '.join(map(repr, labels.classes))}"
        )
    y_true, y_pred, probs, skipped = [], [], [], 0
    for label, p in zip(frame["label"], predictor.predict_iter(frame["text"]), strict=True):
        if p.label is None:
            skipped += 1
        else:
            y_true.append(label)
            y_pred.append(p.label)
            probs.append([p.probabilities[c] for c in labels.classes])
    if not y_true:
        raise UserError(f"every text in {data_path} is empty after preprocessing; nothing to score")
    if skipped:
        log.warning("skipped %d row(s) whose text is empty after preprocessing", skipped)
    truth = labels.encode(y_true)
    metrics = classification_metrics(truth, labels.encode(y_pred), labels.classes)
    metrics["overall"]["ece"] = calibration_error(np.array(probs), np.asarray(truth))
    return metrics
