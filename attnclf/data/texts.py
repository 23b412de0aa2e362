"""Texts to classify: one per line from standard input or a text file, or a table's text column
(CSV, TSV, JSON Lines or Parquet, by extension)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TextIO

from attnclf.data.formats import TABLES, file_format
from attnclf.errors import UserError

CHUNK_SIZE = 4096  # table rows read at a time: memory stays flat on any file size


def _lines(stream: AbstractContextManager[TextIO], name: str) -> Iterator[str]:
    """The lines of a text stream without their line endings (closed when exhausted)."""
    try:
        with stream as fh:
            for line in fh:
                yield line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise UserError(f"{name} is not UTF-8 text; re-save it as UTF-8") from None


def _column(path: Path, columns: Sequence[str], found: Sequence[str]) -> str:
    """The first of `columns` that a table with columns `found` has."""
    column = next((c for c in columns if c in found), None)
    if column is None:
        raise UserError(
            f"{path} has no text column (looked for {', '.join(map(repr, columns))}); "
            f"found columns: {', '.join(map(repr, found))}; pass --text-column NAME"
        )
    return column


def _csv_texts(path: Path, columns: Sequence[str], sep: str) -> Iterator[str]:
    """The first of `columns` that a headered CSV or TSV has, read lazily in chunks."""
    from attnclf.data.read import csv_errors, read_csv  # pandas: only for a table input

    column = _column(path, columns, list(read_csv(path, sep=sep, nrows=0).columns))
    with csv_errors(path, file_format(path)):
        for chunk in read_csv(path, sep=sep, usecols=[column], chunksize=CHUNK_SIZE):
            yield from chunk[column]


def _jsonl_texts(path: Path, columns: Sequence[str]) -> Iterator[str]:
    """The first of `columns` that a JSON Lines file's first chunk has, read lazily in chunks;
    a later row without it is an empty text."""
    import pandas as pd

    from attnclf.data.read import JSON_OPTIONS, json_errors, strings

    column = None
    with json_errors(path), pd.read_json(path, chunksize=CHUNK_SIZE, **JSON_OPTIONS) as reader:
        for chunk in reader:
            column = column or _column(path, columns, [str(c) for c in chunk.columns])
            yield from strings(chunk.reindex(columns=[column]))[column]


def _parquet_texts(path: Path, columns: Sequence[str]) -> Iterator[str]:
    """The first of `columns` that a Parquet file has, read lazily in record batches.

    pyarrow reads a Parquet file a row group at a time and decodes only the chosen column, so
    memory stays flat as with the other formats' chunks; pandas would read the whole file.
    """
    from attnclf.data.read import parquet_errors, strings

    with parquet_errors(path):
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        column = _column(path, columns, table.schema_arrow.names)
        for batch in table.iter_batches(batch_size=CHUNK_SIZE, columns=[column]):
            yield from strings(batch.to_pandas())[column]


def _table_texts(path: Path, columns: Sequence[str]) -> Iterator[str]:
    """The text column of a table file, by its format."""
    fmt = file_format(path)
    if fmt == "JSON Lines":
        return _jsonl_texts(path, columns)
    if fmt == "Parquet":
        return _parquet_texts(path, columns)
    return _csv_texts(path, columns, "\t" if fmt == "TSV" else ",")


def read_texts(source: str, text_columns: Sequence[str] = ("text",)) -> Iterator[str]:
    """Texts from `-` (stdin, one per line), a table file (.csv, .tsv, .jsonl, .parquet...: the
    first of `text_columns` it has) or a text file (one per line)."""
    if source == "-":
        return _lines(nullcontext(sys.stdin), "standard input")
    path = Path(source)
    if not path.is_file():
        raise UserError(
            f"input file not found: {path}; pass a .txt, .csv, .tsv, .jsonl or .parquet file, "
            f"or - for stdin"
        )
    if path.suffix.lower() in TABLES:
        return _table_texts(path, text_columns)
    try:
        return _lines(path.open(encoding="utf-8-sig"), str(path))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
