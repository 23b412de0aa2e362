"""Texts to classify: one per line from standard input or a text file, or a CSV's text column."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TextIO

from attnclf.errors import UserError

CHUNK_SIZE = 4096  # CSV rows read at a time: memory stays flat on any file size


def _lines(stream: AbstractContextManager[TextIO], name: str) -> Iterator[str]:
    """The lines of a text stream without their line endings (closed when exhausted)."""
    try:
        with stream as fh:
            for line in fh:
                yield line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise UserError(f"{name} is not UTF-8 text; re-save it as UTF-8") from None


def _csv_texts(path: Path, columns: Sequence[str]) -> Iterator[str]:
    """The first of `columns` that a headered CSV has, read lazily in chunks."""
    from attnclf.data.read import csv_errors, read_csv  # pandas: only for a CSV input

    found = list(read_csv(path, nrows=0).columns)
    column = next((c for c in columns if c in found), None)
    if column is None:
        raise UserError(
            f"{path} has no text column (looked for {', '.join(map(repr, columns))}); "
            f"found columns: {', '.join(map(repr, found))}"
        )
    with csv_errors(path):
        for chunk in read_csv(path, usecols=[column], chunksize=CHUNK_SIZE):
            yield from chunk[column]


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
