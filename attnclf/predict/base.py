"""What any backend's predictions look like, and the steps around the model that all share.

Torch-free, so the onnx backend (`attnclf.predict.onnx_backend`) deploys without torch: a
backend supplies only `_infer` (encoded texts in, class probabilities and attention out);
cleaning, encoding, ranking and reading inputs are done here, the same for every backend.
`attnclf.predict.load` picks and loads a backend.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import orjson
from more_itertools import chunked

from attnclf.config import Config
from attnclf.data.texts import read_texts
from attnclf.encoding.labels import LabelEncoder
from attnclf.encoding.preprocess import Preprocessor
from attnclf.encoding.tokenizer import Tokenizer
from attnclf.errors import UserError

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
    influence: list[float] | None = None  # one per token when explained (`attnclf.explain`)

    def to_json(self) -> str:
        """One JSON line (ASCII-escaped, so any input text survives any terminal or pipe)."""
        fields = vars(self)  # not asdict(): its deep copy costs more than the model
        try:
            line = orjson.dumps(fields)  # ~5x json.dumps, but it never escapes non-ASCII
            if line.isascii():
                return line.decode()
        except TypeError:  # a lone surrogate: only the standard library escapes it
            pass
        return json.dumps(fields, separators=(",", ":"))


def length_batches(
    sequences: Sequence[Sequence[int]], max_len: int, pad_to: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Batches of at most `BATCH_SIZE` encoded texts: (rows, ids [B, L], lengths [B]).

    The texts are truncated to `max_len`, sorted by length (stably) and cut into batches, each
    padded with 0 to its longest text but to at least `pad_to` positions: the order and padding
    of training's unshuffled length-bucketed loader (`attnclf.encoding.batching`), so even a
    model whose RNN runs over the padding sees the same batches, built here in numpy.
    """
    assert len(sequences) <= CHUNK_SIZE  # one length-sorted pool, as the training loader's
    lengths = np.fromiter((min(len(s), max_len) for s in sequences), np.int64, len(sequences))
    flat = chain.from_iterable(s[:max_len] for s in sequences)
    tokens = np.fromiter(flat, np.int64, count=int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    order = np.argsort(lengths, kind="stable")
    for first in range(0, len(order), BATCH_SIZE):
        rows = order[first : first + BATCH_SIZE]
        lens = lengths[rows]
        ids = np.zeros((len(rows), max(pad_to, int(lens.max()))), np.int64)
        ids[np.arange(ids.shape[1]) < lens[:, None]] = np.concatenate(
            [tokens[starts[r] : starts[r + 1]] for r in rows]
        )
        yield rows, ids, lens


class TextClassifier(ABC):
    """A trained run that classifies raw texts the way it was trained; `_infer` is the backend."""

    def __init__(
        self, config: Config, preprocessor: Preprocessor, tokenizer: Tokenizer, labels: LabelEncoder
    ) -> None:
        """Keep what cleaning, encoding and labelling need."""
        self.config = config
        self.preprocessor = preprocessor
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_len = config.tokenizer.max_seq_len

    @property
    def text_columns(self) -> list[str]:
        """Where a CSV input's texts are looked for: the run's text column, `text`, `title`."""
        return list(dict.fromkeys([self.config.data.text_column, "text", "title"]))

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
        """Clean, encode and classify one chunk of texts (lazily answered)."""
        clean = self.preprocessor.batch(texts)
        tokens = [self.tokenizer.tokenize(c) for c in clean if c]
        sequences = self.tokenizer.tokens_to_sequences(tokens)
        inferred = self._infer(sequences, explain) if tokens else (np.zeros((0, 0)), [], None)
        return self._answers(texts, clean, tokens, inferred, top_k)

    def _answers(
        self,
        texts: list[str],
        clean: list[str],
        tokens: list[list[str]],
        inferred: tuple[np.ndarray, list[list[float]], list[list[float]] | None],
        top_k: int | None,
    ) -> Iterator[Prediction]:
        """One `Prediction` per text from `_infer`'s output for the texts cleaning kept
        (`tokens`: theirs, whole)."""
        probs, attention, influence = inferred
        classes = self.labels.classes
        # Rank and convert the whole chunk at once: per-row indexing is slow.
        ranked = np.argsort(-probs, axis=1, kind="stable")[:, :top_k].tolist()
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
                tokens=tokens[row][: self.max_len],
                attention=attention[row],
                truncated=len(tokens[row]) > self.max_len,
                influence=influence[row] if influence is not None else None,
            )
            row += 1

    @abstractmethod
    def _infer(
        self, sequences: Sequence[Sequence[int]], explain: bool = False
    ) -> tuple[np.ndarray, list[list[float]], list[list[float]] | None]:
        """Probabilities [N, C], per-token attention and influence (if `explain`), input order."""
