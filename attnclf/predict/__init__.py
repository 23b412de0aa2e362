"""Classify raw texts with a trained run folder: `load(run, backend)` is the way in.

    from attnclf.predict import load

    classifier = load("artifacts/latest")  # or backend="onnx": its exported model.onnx
    for p in classifier.predict(["Tennis star wins the final"], top_k=2):
        print(p.label, p.probabilities)

`base` holds what every backend shares (`TextClassifier`, `Prediction`), `torch_backend` and
`onnx_backend` the two backends. This module imports neither backend until `load` asks for
one (so `backend="onnx"` never imports torch) and nothing heavy itself: the CLI reads
`BACKENDS` for its `--backend` choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from attnclf.errors import UserError

if TYPE_CHECKING:
    from attnclf.predict.base import TextClassifier

BACKENDS = ("torch", "onnx")  # what can run a model: its weights, or its `attnclf export`


def load(run: str | Path, backend: str = "torch", threads: int | None = None) -> TextClassifier:
    """A run folder loaded for `backend`: torch (its weights) or onnx (its exported model.onnx).

    `threads` caps the backend's intra-op threads (None: its default, one per core).
    """
    if backend == "onnx":
        from attnclf.predict.onnx_backend import OnnxPredictor

        return OnnxPredictor.from_run(run, threads)
    if backend != "torch":
        raise UserError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    from attnclf.predict.torch_backend import Predictor

    if threads:
        import torch

        torch.set_num_threads(threads)
    return Predictor.from_run(run)


def freeze_loaded() -> None:
    """Keep every object made so far (a loaded run's) out of the garbage collector's scans.

    A loaded run is ~200,000 long-lived objects (vocabulary, modules, config); the objects
    that predictions create trigger a full collection every few thousand texts, which scanned
    them all: ~10 us a text, a tenth of batch prediction (`gc.freeze`). For the commands that
    predict until they exit: `predict` and `serve`.
    """
    import gc

    gc.freeze()
