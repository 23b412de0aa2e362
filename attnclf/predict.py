"""Classify raw texts with a trained run folder, with each token's attention and influence.

Kept light to import: torch and the run-folder modules only; pandas is imported only to read
a CSV input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from more_itertools import chunked

from attnclf.batching import TextDataset, make_loader
from attnclf.data.texts import read_texts
from attnclf.errors import UserError
from attnclf.influence import explain_batch
from attnclf.runfolder import LoadedRun, RunFolder

CHUNK_SIZE = 4096  # texts read, cleaned and encoded at a time (memory stays flat)
BATCH_SIZE = 512  # texts per forward pass
EMPTY = "empty after preprocessing (only stopwords, punctuation or whitespace): nothing to classify"


@dataclass
class Prediction:
    """The model's answer for one text; `label` is None and `error` says why when it has none."""

    text: str
    clean: str
    label: str | None
    probabilities: dict[str, float]  # highest first
    tokens: list[str]  # the tokens the model saw (truncated to max_seq_len)
    attention: list[float]  # one weight per token
    truncated: bool
    error: str | None = None
    influence: list[float] | None = None  # one per token when explained (`attnclf.influence`)

    def to_json(self) -> str:
        """One JSON line (ASCII-escaped, so any input text survives any terminal or pipe)."""
        return json.dumps(vars(self))  # not asdict(): its deep copy costs more than the model


class Predictor:
    """A trained run, ready to classify raw texts the way it was trained."""

    def __init__(self, run: LoadedRun) -> None:
        """Build the model of a loaded run folder."""
        self.run = run
        self.model = run.build_model()
        self.max_len = run.config.tokenizer.max_seq_len

    @classmethod
    def from_run(cls, path: str | Path) -> Predictor:
        """Load a run folder (checking that its files belong together)."""
        return cls(RunFolder.load(path))

    @property
    def text_columns(self) -> list[str]:
        """Where a CSV input's texts are looked for: the run's text column, `text`, `title`."""
        return list(dict.fromkeys([self.run.config.data.text_column, "text", "title"]))

    def read(self, source: str) -> Iterator[str]:
        """Texts from `-` (stdin), a text file (one per line) or a CSV (see `text_columns`)."""
        return read_texts(source, self.text_columns)

    def predict(
        self, texts: Iterable[str], top_k: int | None = None, explain: bool = False
    ) -> list[Prediction]:
        """Predictions for `texts`, in order; `top_k` keeps only the most probable classes.

        `explain` also computes each token's influence (about n + 1 predictions per text).
        """
        return list(self.predict_iter(texts, top_k, explain))

    def predict_one(self, text: str, top_k: int | None = None, explain: bool = False) -> Prediction:
        """The prediction for one text; one that preprocessing empties is a `UserError`."""
        (p,) = self.predict([text], top_k, explain)
        if p.error is not None:
            raise UserError(f"the text is {p.error}")
        return p

    def predict_iter(
        self, texts: Iterable[str], top_k: int | None = None, explain: bool = False
    ) -> Iterator[Prediction]:
        """Like `predict`, but lazy: reads and answers `CHUNK_SIZE` texts at a time."""
        if top_k is not None and top_k < 1:
            raise UserError(f"--top-k must be at least 1, got {top_k}")
        for chunk in chunked(texts, CHUNK_SIZE):
            yield from self._predict_chunk(chunk, top_k, explain)

    def truncation_warning(self, count: int) -> str | None:
        """What to tell the user when `count` texts were longer than the model reads."""
        if not count:
            return None
        return (
            f"{count} text(s) had more than tokenizer.max_seq_len={self.max_len} tokens; "
            f"only their first {self.max_len} were used"
        )

    def _predict_chunk(
        self, texts: list[str], top_k: int | None, explain: bool
    ) -> Iterator[Prediction]:
        """Clean, encode and classify one chunk of texts."""
        run = self.run
        clean = run.preprocessor.batch(texts)
        kept = [c for c in clean if c]
        sequences = run.tokenizer.texts_to_sequences(kept)
        probs, attention, influence = self._infer(sequences, explain)
        classes = run.labels.classes
        # Rank and convert the whole chunk at once: per-row tensor indexing is slow.
        ranked = probs.argsort(dim=1, descending=True)[:, :top_k].tolist()
        values = probs.tolist()
        row = 0
        for text, cleaned in zip(texts, clean, strict=True):
            if not cleaned:
                yield Prediction(text, cleaned, None, {}, [], [], False, EMPTY)
                continue
            order = ranked[row]
            yield Prediction(
                text=text,
                clean=cleaned,
                label=classes[order[0]],
                probabilities={classes[j]: values[row][j] for j in order},
                tokens=run.tokenizer.tokenize(cleaned)[: self.max_len],
                attention=attention[row],
                truncated=len(sequences[row]) > self.max_len,
                influence=influence[row] if explain else None,
            )
            row += 1

    def _infer(
        self, sequences: Sequence[Sequence[int]], explain: bool
    ) -> tuple[torch.Tensor, list[list[float]], list[list[float]]]:
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
        return probs, attention, influence
