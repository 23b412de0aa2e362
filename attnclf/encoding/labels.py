"""Label encoder with a stable, sorted class order, saved as JSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from attnclf.errors import UserError
from attnclf.jsonio import read_json, write_json


class LabelEncoder:
    """Maps class names to indices 0..C-1 in sorted order."""

    def __init__(self, classes: Sequence[str] = ()) -> None:
        self.classes: list[str] = list(classes)
        self.index = {label: i for i, label in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.classes)

    def fit(self, labels: Iterable[str]) -> LabelEncoder:
        """Learn the sorted set of classes."""
        self.__init__(sorted(set(labels)))
        return self

    def unknown(self, labels: Iterable[str]) -> list[str]:
        """The labels (sorted, unique) that this encoder has never seen."""
        return sorted(set(labels) - set(self.index))

    def encode(self, labels: Iterable[str]) -> list[int]:
        """Class indices for `labels`; an unseen label is a `UserError`."""
        labels = list(labels)
        unseen = self.unknown(labels)
        if unseen:
            raise UserError(
                f"unknown label(s) {', '.join(map(repr, unseen))}; "
                f"this model knows only {', '.join(map(repr, self.classes))}"
            )
        return [self.index[label] for label in labels]

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Class names for indices."""
        return [self.classes[i] for i in indices]

    def save(self, path: str | Path) -> Path:
        """Write the classes as JSON."""
        return write_json(path, {"classes": self.classes})

    @classmethod
    def load(cls, path: str | Path) -> LabelEncoder:
        """Read an encoder written by `save`; a value of the wrong type is a ValueError."""
        classes = read_json(path)["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError("classes must be a list of strings")
        if len(set(classes)) != len(classes):
            raise ValueError("classes must not repeat")
        return cls(classes)
