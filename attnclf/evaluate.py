"""`attnclf evaluate` as a library call: score a trained run on a labelled file, no retraining."""

from __future__ import annotations

import logging
from pathlib import Path

from attnclf.data.read import read_labelled
from attnclf.errors import UserError
from attnclf.metrics import classification_metrics
from attnclf.predict import Predictor

log = logging.getLogger(__name__)


def evaluate_run(run_dir: str | Path, data_path: str | Path) -> dict:
    """Metrics (the layout of a run's metrics.json) of the run at `run_dir` on a labelled file."""
    predictor = Predictor.from_run(run_dir)
    labels = predictor.run.labels
    frame = read_labelled(data_path, predictor.run.config.data).frame
    unseen = labels.unknown(frame["label"])
    if unseen:
        raise UserError(
            f"{data_path} has label(s) that the run never saw: {', '.join(map(repr, unseen))}; "
            f"the run at {run_dir} knows only {', '.join(map(repr, labels.classes))}"
        )
    y_true, y_pred, skipped = [], [], 0
    for label, p in zip(frame["label"], predictor.predict_iter(frame["text"]), strict=True):
        if p.label is None:
            skipped += 1
        else:
            y_true.append(label)
            y_pred.append(p.label)
    if not y_true:
        raise UserError(f"every text in {data_path} is empty after preprocessing; nothing to score")
    if skipped:
        log.warning("skipped %d row(s) whose text is empty after preprocessing", skipped)
    return classification_metrics(labels.encode(y_true), labels.encode(y_pred), labels.classes)
