"""Reading labelled CSVs in the two AG News layouts (or any headered CSV) into text/label frames."""

from __future__ import annotations

import contextlib
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from attnclf.config import DataConfig
from attnclf.errors import UserError

log = logging.getLogger(__name__)

AG_NEWS_CLASSES = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


@dataclass
class LabelledData:
    """Texts and labels read from a file, with how many rows were unusable."""

    frame: pd.DataFrame  # columns: text, label (both str); AG News layout: description too
    dropped: int
    layout: str


def _check_file(path: Path) -> None:
    """Raise a `UserError` unless `path` is a readable, non-empty file."""
    if not path.exists():
        raise UserError(f"data file not found: {path}; check the path or pass --set data.path=FILE")
    if path.is_dir():
        raise UserError(f"data path {path} is a directory; point data.path at a CSV file inside it")
    if not path.is_file():
        raise UserError(
            f"data path {path} is not a regular file (a pipe, socket or device); save the data "
            f"to a CSV file and point data.path at it"
        )
    if path.stat().st_size == 0:
        raise UserError(f"data file {path} is empty; it needs a header and labelled rows")


def detect_layout(path: Path) -> str:
    """`ag_news` for the headerless class-index layout, else `header`."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            first = next(csv.reader(fh), [])
    except UnicodeDecodeError:
        raise UserError(f"data file {path} is not UTF-8 text; re-save it as UTF-8") from None
    if len(first) == 3 and first[0].strip() in AG_NEWS_CLASSES:
        return "ag_news"
    return "header"


@contextlib.contextmanager
def csv_errors(path: Path) -> Iterator[None]:
    """Turn pandas' encoding and parse errors while reading `path` into `UserError`s."""
    try:
        yield
    except UnicodeDecodeError:
        raise UserError(f"data file {path} is not UTF-8 text; re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UserError(
            f"data file {path} has no rows; it needs a header and labelled rows"
        ) from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise UserError(f"could not parse {path} as CSV ({reason}); fix the file") from None


def read_csv(path: Path, **kwargs) -> Any:
    """`pandas.read_csv` of UTF-8 text (a BOM is fine), every cell a string, errors as
    `UserError`s; with `chunksize`, iterate it inside `csv_errors(path)`."""
    with csv_errors(path):
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            encoding_errors="strict",
            **kwargs,
        )


def _from_header(path: Path, cfg: DataConfig) -> pd.DataFrame:
    """Text and label columns of a headered CSV, by the configured names."""
    frame = read_csv(path)
    missing = [c for c in (cfg.text_column, cfg.label_column) if c not in frame.columns]
    if missing:
        found = ", ".join(map(repr, frame.columns))
        hint = " (is it comma-separated?)" if len(frame.columns) == 1 else ""
        raise UserError(
            f"{path} has no column {missing[0]!r}{hint}; found columns: {found}; set "
            f"data.text_column and data.label_column to the right names"
        )
    return pd.DataFrame({"text": frame[cfg.text_column], "label": frame[cfg.label_column]})


def _from_ag_news(path: Path, cfg: DataConfig) -> pd.DataFrame:
    """Class index, title and description of the original headerless AG News CSV."""
    frame = read_csv(path, header=None)
    if frame.shape[1] != 3:
        raise UserError(
            f"{path} has {frame.shape[1]} columns, but the AG News layout has 3 (class index, "
            f"title, description); set data.format=header for a headered CSV"
        )
    text = frame[1]
    if cfg.use_description:
        text = text.str.cat(frame[2], sep=" ")
    text, description = (
        t.str.replace("\\n", " ", regex=False).str.replace("\\", " ", regex=False)
        for t in (text, frame[2])
    )
    label = frame[0].str.strip().map(AG_NEWS_CLASSES).fillna("")
    return pd.DataFrame({"text": text, "label": label, "description": description.str.strip()})


def read_labelled(path: str | Path, cfg: DataConfig) -> LabelledData:
    """Read a labelled CSV, dropping (and counting) rows whose text or label is empty."""
    path = Path(path)
    _check_file(path)
    layout = detect_layout(path) if cfg.format == "auto" else cfg.format
    frame = _from_ag_news(path, cfg) if layout == "ag_news" else _from_header(path, cfg)
    frame["text"] = frame["text"].str.strip()
    frame["label"] = frame["label"].str.strip()
    keep = (frame["text"] != "") & (frame["label"] != "")
    dropped = int((~keep).sum())
    frame = frame[keep].reset_index(drop=True)
    if frame.empty:
        raise UserError(
            f"{path} has no rows with both a text and a label; check the file's columns"
        )
    if dropped:
        log.warning("dropped %d row(s) of %s with an empty text or label", dropped, path)
    return LabelledData(frame, dropped, layout)
