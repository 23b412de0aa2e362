"""The torch backend: classify raw texts with a trained run folder's weights, with each
token's attention and influence.

Kept light to import: torch and the run-folder modules only; pandas is imported only to read
a CSV input. `attnclf.predict.base` holds what every backend shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from attnclf.explain.influence import explain_batch
from attnclf.predict.base import TextClassifier, length_batches
from attnclf.runfolder import LoadedRun, RunFolder


class Predictor(TextClassifier):
    """A trained run, ready to classify raw texts the way it was trained (torch backend)."""

    def __init__(self, run: LoadedRun) -> None:
        """Build the model of a loaded run folder."""
        super().__init__(run.config, run.preprocessor, run.tokenizer, run.labels)
        self.run = run
        self.model = run.build_model()

    @classmethod
    def from_run(cls, path: str | Path) -> Predictor:
        """Load a run folder (checking that its files belong together)."""
        return cls(RunFolder.load(path))

    def _infer(
        self, sequences: Sequence[Sequence[int]], explain: bool = False
    ) -> tuple[np.ndarray, list[list[float]], list[list[float]] | None]:
        """Probabilities [N, C], per-token attention and influence (if `explain`), input order."""
        probs = torch.zeros(len(sequences), len(self.run.labels))
        attention: list[list[float]] = [[] for _ in sequences]
        influence: list[list[float]] = [[] for _ in sequences]
        pad_to = self.run.config.tokenizer.pad_to or 1
        with torch.inference_mode():
            for rows, ids_np, lens_np in length_batches(sequences, self.max_len, pad_to):
                ids, lengths = torch.from_numpy(ids_np), torch.from_numpy(lens_np)
                if explain:
                    e = explain_batch(self.model, ids, lengths)
                    p, w, s = e.probs, e.attention, e.influence
                else:
                    (p, w), s = self.model.probabilities(ids, lengths), None
                probs[torch.from_numpy(rows)] = p
                positions, counts = rows.tolist(), lens_np.tolist()
                for pos, n, row in zip(positions, counts, w.tolist(), strict=True):
                    attention[pos] = row[:n]
                if s is not None:
                    for pos, n, row in zip(positions, counts, s.tolist(), strict=True):
                        influence[pos] = row[:n]
        return probs.numpy(), attention, influence if explain else None
