"""Classify raw texts with a trained run folder, with each token's attention weight.

Kept light to import: torch and the run-folder modules only; pandas is imported only to read
a CSV input and matplotlib only to draw a plot.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch
from more_itertools import chunked

from attnclf.batching import TextDataset, make_loader
from attnclf.errors import UserError
from attnclf.model import AttentionClassifier
from attnclf.run import WEIGHTS, RunParts, load_run

CHUNK_SIZE = 4096  # texts read, cleaned and encoded at a time (memory stays flat)
BATCH_SIZE = 512  # texts per forward pass
EMPTY = "empty after preprocessing (only stopwords, punctuation or whitespace): nothing to classify"
_BLOCKS = " ▏▎▍▌▋▊▉█"


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

    def to_json(self) -> str:
        """One JSON line (ASCII-escaped, so any input text survives any terminal or pipe)."""
        return json.dumps(vars(self))  # not asdict(): its deep copy costs more than the model


def build_model(parts: RunParts) -> AttentionClassifier:
    """The run's model with its weights loaded (strictly) and in eval mode."""
    model = AttentionClassifier(len(parts.tokenizer), len(parts.labels), parts.config.model)
    try:
        model.load_state_dict(parts.state_dict, strict=True)
    except RuntimeError as exc:
        details = " ".join(str(exc).split("\n", 1)[-1].split())
        raise UserError(
            f"{parts.path / WEIGHTS} does not match the model in the run's config.yaml "
            f"({details[:300]}); retrain or restore the run folder"
        ) from None
    return model.eval()


class Predictor:
    """A trained run, ready to classify raw texts the way it was trained."""

    def __init__(self, parts: RunParts) -> None:
        """Build the model of a loaded run folder."""
        self.parts = parts
        self.model = build_model(parts)
        self.max_len = parts.config.tokenizer.max_seq_len

    @classmethod
    def from_run(cls, path: str | Path) -> Predictor:
        """Load a run folder (checking that its files belong together)."""
        return cls(load_run(path))

    def predict(self, texts: Iterable[str], top_k: int | None = None) -> list[Prediction]:
        """Predictions for `texts`, in order; `top_k` keeps only the most probable classes."""
        return list(self.predict_iter(texts, top_k))

    def predict_iter(self, texts: Iterable[str], top_k: int | None = None) -> Iterator[Prediction]:
        """Like `predict`, but lazy: reads and answers `CHUNK_SIZE` texts at a time."""
        if top_k is not None and top_k < 1:
            raise UserError(f"--top-k must be at least 1, got {top_k}")
        for chunk in chunked(texts, CHUNK_SIZE):
            yield from self._predict_chunk(chunk, top_k)

    def _predict_chunk(self, texts: list[str], top_k: int | None) -> Iterator[Prediction]:
        """Clean, encode and classify one chunk of texts."""
        parts = self.parts
        clean = parts.preprocessor.batch(texts)
        kept = [c for c in clean if c]
        sequences = parts.tokenizer.texts_to_sequences(kept)
        probs, attention = self._infer(sequences)
        classes = parts.labels.classes
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
                tokens=parts.tokenizer.tokenize(cleaned)[: self.max_len],
                attention=attention[row],
                truncated=len(sequences[row]) > self.max_len,
            )
            row += 1

    def _infer(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, list[list[float]]]:
        """Class probabilities [N, C] and per-token attention of encoded texts, in input order."""
        # The labels carry each text's position: batches come sorted by length (less padding).
        dataset = TextDataset(
            sequences, list(range(len(sequences))), self.max_len, self.parts.config.tokenizer.pad_to
        )
        probs = torch.zeros(len(sequences), len(self.parts.labels))
        attention: list[list[float]] = [[] for _ in sequences]
        with torch.inference_mode():
            for batch in make_loader(dataset, BATCH_SIZE, shuffle=False, bucket=True):
                logits, weights = self.model(batch.ids, batch.lengths)
                probs[batch.labels] = torch.softmax(logits.float(), dim=-1)
                for pos, n, w in zip(
                    batch.labels.tolist(), batch.lengths.tolist(), weights.tolist(), strict=True
                ):
                    attention[pos] = w[:n]
        return probs, attention


def _lines(stream: AbstractContextManager[TextIO], name: str) -> Iterator[str]:
    """The lines of a text stream without their line endings (closed when exhausted)."""
    try:
        with stream as fh:
            for line in fh:
                yield line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise UserError(f"{name} is not UTF-8 text; re-save it as UTF-8") from None


def _csv_texts(path: Path, columns: Sequence[str]) -> Iterator[str]:
    """The text column of a headered CSV, read lazily in chunks."""
    import pandas as pd

    def read(**kwargs):
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", **kwargs)

    try:
        found = list(read(nrows=0).columns)
        column = next((c for c in columns if c in found), None)
        if column is None:
            raise UserError(
                f"{path} has no text column (looked for {', '.join(map(repr, columns))}); "
                f"found columns: {', '.join(map(repr, found))}"
            )
        for chunk in read(usecols=[column], chunksize=CHUNK_SIZE):
            yield from chunk[column]
    except ValueError as exc:  # pandas' parser errors and UnicodeDecodeError
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not read {path} as a UTF-8 CSV ({reason}); fix the file") from None


def read_texts(source: str, text_columns: Sequence[str] = ("text",)) -> Iterator[str]:
    """Texts from `-` (stdin, one per line), a .csv (first of `text_columns`) or a text file."""
    if source == "-":
        return _lines(nullcontext(sys.stdin), "standard input")
    path = Path(source)
    if not path.is_file():
        raise UserError(f"input file not found: {path}; pass a .txt or .csv file, or - for stdin")
    if path.suffix.lower() == ".csv":
        return _csv_texts(path, text_columns)
    try:
        return _lines(path.open(encoding="utf-8-sig"), str(path))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None


def _display(text: str, width: int) -> str:
    """`text` on one line, control characters escaped, cut to `width` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: width + 1])
    return text if len(text) <= width else text[: width - 1] + "…"


def attention_bars(tokens: Sequence[str], weights: Sequence[float], width: int = 24) -> str:
    """One line per token: the token, a bar (full for the top weight) and its attention weight."""
    top = max(weights, default=0.0) or 1.0
    shown = [_display(t, 20) for t in tokens]
    pad = max((len(t) for t in shown), default=0)
    lines = []
    for token, w in zip(shown, weights, strict=True):
        eighths = round(w / top * width * 8)
        bar = "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")
        lines.append(f"    {token:<{pad}}  {bar:<{width}}  {w:.3f}")
    return "\n".join(lines)


def format_prediction(index: int, p: Prediction, explain: bool = False) -> str:
    """A human-readable block for one prediction (with attention bars when `explain`)."""
    lines = [f"[{index}] {_display(p.text, 100)}"]
    if p.error is not None:
        return "\n".join([*lines, f"    error: {p.error}"])
    lines.append(
        "    " + "   ".join(f"{label} {prob:.3f}" for label, prob in p.probabilities.items())
    )
    if p.truncated:
        lines.append(f"    (truncated to its first {len(p.tokens)} tokens)")
    if explain:
        lines.append(attention_bars(p.tokens, p.attention))
    return "\n".join(lines)


def plot_prediction(p: Prediction, path: str | Path) -> Path:
    """Save the lesson's heatmap of attention over the tokens of one prediction as PNG."""
    from attnclf.plots import plot_attention

    if p.label is None:
        raise UserError(f"no attention to plot: the text is {p.error}")
    title = f"{p.label} ({p.probabilities[p.label]:.2f}): {_display(p.text, 60)}"
    return plot_attention(p.tokens, p.attention, title, path)
