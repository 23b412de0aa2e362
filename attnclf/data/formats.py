"""Which format a data file is read as, by its extension (torch- and pandas-free)."""

from __future__ import annotations

from pathlib import Path

FORMATS = {
    ".tsv": "TSV",
    ".tab": "TSV",
    ".jsonl": "JSON Lines",
    ".ndjson": "JSON Lines",
    ".parquet": "Parquet",
    ".pq": "Parquet",
}
TABLES = (".csv", *FORMATS)  # the extensions that name a table rather than plain lines of text


def file_format(path: str | Path) -> str:
    """`CSV`, `TSV`, `JSON Lines` or `Parquet`, by `path`'s extension (anything else: CSV)."""
    return FORMATS.get(Path(path).suffix.lower(), "CSV")
