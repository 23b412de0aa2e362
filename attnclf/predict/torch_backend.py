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

from attnclf.encoding.batching import TextDataset, make_loader
from attnclf.explain.influence import explain_batch
from attnclf.predict.base import BATCH_SIZE, TextClassifier
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
        # The labels carry each text's position: batches come sorted by length (less padding).
        dataset = TextDataset(
            sequences, list(range(len(sequences))), self.max_len, self.run.config.tokenizer.pad_to
        )
        probs = torch.zeros(len(sequences), len(self.run.labels))
        attention: list[list[float]] = [[] for _ in sequences]
        influence: list[list[float]] = [[] for _ in sequences]
        with torch.inference_mode():
            for batch in make_loader(dataset, BATCH_SIZE, shuffle=False, bucket=True):
                if explain:
                    e = explain_batch(self.model, batch.ids, batch.lengths)
                    p, w, s = e.probs, e.attention, e.influence
                else:
                    (p, w), s = self.model.probabilities(batch.ids, batch.lengths), None
                probs[batch.labels] = p
                positions, lengths = batch.labels.tolist(), batch.lengths.tolist()
                for pos, n, row in zip(positions, lengths, w.tolist(), strict=True):
                    attention[pos] = row[:n]
                if s is not None:
                    for pos, n, row in zip(positions, lengths, s.tolist(), strict=True):
                        influence[pos] = row[:n]
        return probs.numpy(), attention, influence if explain else None
