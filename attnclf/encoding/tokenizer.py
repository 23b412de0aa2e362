"""Word- or character-level tokenizer with a frequency-capped vocabulary, saved as JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from attnclf.jsonio import read_json, write_json

PAD, UNK = "<PAD>", "<UNK>"
PAD_ID, UNK_ID = 0, 1  # every vocabulary starts with them


class Tokenizer:
    """Maps texts to index sequences; index 0 is padding and 1 is the unknown token."""

    def __init__(
        self,
        level: Literal["word", "char"] = "word",
        num_tokens: int | None = None,
        min_freq: int = 1,
        vocab: Sequence[str] | None = None,
    ) -> None:
        self.level = level
        self.num_tokens = num_tokens
        self.min_freq = min_freq
        self.vocab: list[str] = [PAD, UNK]
        self.index: dict[str, int] = {}
        if vocab is not None:
            self._set_vocab(vocab)
        else:
            self._set_vocab([PAD, UNK])

    def _set_vocab(self, vocab: Sequence[str]) -> None:
        """Install a vocabulary whose first two entries are the special tokens."""
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise ValueError("vocab must be a list of strings")
        if vocab[:2] != [PAD, UNK] or len(set(vocab)) != len(vocab):
            raise ValueError("vocab must start with <PAD>, <UNK> and hold no duplicates")
        self.vocab = list(vocab)
        self.index = {token: i for i, token in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """Split a preprocessed text into tokens."""
        return list(text) if self.level == "char" else text.split()

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Build the vocabulary from training texts: most frequent first, ties alphabetical."""
        counts = Counter(token for text in texts for token in self.tokenize(text))
        ranked = sorted(
            (
                item
                for item in counts.items()
                if item[1] >= self.min_freq and item[0] not in (PAD, UNK)
            ),
            key=lambda item: (-item[1], item[0]),
        )
        self._set_vocab([PAD, UNK] + [token for token, _ in ranked[: self.num_tokens]])
        return self

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        """Map each text to token indices; unknown tokens (and a literal `<PAD>`) become 1."""
        return self.tokens_to_sequences(self.tokenize(text) for text in texts)

    def tokens_to_sequences(self, tokenized: Iterable[Sequence[str]]) -> list[list[int]]:
        """Map each text's tokens to indices; unknown tokens (and a literal `<PAD>`) become 1."""
        get = self.index.get
        return [[get(token, 1) or 1 for token in tokens] for tokens in tokenized]

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Map index sequences back to text, skipping padding."""
        sep = "" if self.level == "char" else " "
        return [sep.join(self.vocab[i] for i in seq if i != 0) for seq in sequences]

    def to_dict(self) -> dict:
        """Settings and vocabulary as plain data."""
        return {
            "level": self.level,
            "num_tokens": self.num_tokens,
            "min_freq": self.min_freq,
            "vocab": self.vocab,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        """Rebuild a tokenizer saved by `to_dict`; a value of the wrong type is a ValueError."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object with level, num_tokens, min_freq, vocab")
        level, num_tokens, min_freq = data["level"], data["num_tokens"], data["min_freq"]
        if level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {level!r}")
        for name, value in (("num_tokens", num_tokens), ("min_freq", min_freq)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        return cls(level, num_tokens, min_freq, data["vocab"])

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer as JSON."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer written by `save`."""
        return cls.from_dict(read_json(path))
