"""Reading labelled files into text/label frames: headered CSV, TSV, JSON Lines or Parquet (by
extension), or the original headerless AG News CSV."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from attnclf.config import DataConfig
from attnclf.data.formats import file_format
from attnclf.errors import UserError

log = logging.getLogger(__name__)

AG_NEWS_CLASSES = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
DEFAULTS = DataConfig()  # a column name that differs from its default was chosen by the user
FLAGS = "--text-column and --label-column"
# Every cell as read, for any JSON type: no dtype or date guessing; nullable ints keep 0/1 as 0/1.
JSON_OPTIONS = dict(
    lines=True,
    dtype=False,
    dtype_backend="numpy_nullable",
    precise_float=True,
    encoding="utf-8-sig",
    encoding_errors="strict",
)


@dataclass
class LabelledData:
    """Texts and labels read from a file, with how many rows were unusable."""

    frame: pd.DataFrame  # columns: text, label (both str); AG News layout: description too
    dropped: int
    layout: str
    columns: tuple[str, str] | None = None  # a headered file's text and label columns


def _check_file(path: Path) -> None:
    """Raise a `UserError` unless `path` is a readable, non-empty file."""
    if not path.exists():
        raise UserError(f"data file not found: {path}; check the path or pass --set data.path=FILE")
    if path.is_dir():
        raise UserError(f"data path {path} is a directory; point data.path at a file inside it")
    if not path.is_file():
        raise UserError(
            f"data path {path} is not a regular file (a pipe, socket or device); save the data "
            f"to a file and point data.path at it"
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
def csv_errors(path: Path, kind: str = "CSV") -> Iterator[None]:
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
        raise UserError(f"could not parse {path} as {kind} ({reason}); fix the file") from None
    except pd.errors.ParserWarning:  # a first row longer than the header: raised by `read_csv`
        raise UserError(
            f"could not parse {path} as {kind} (a row has more fields than the header); fix the "
            f"file"
        ) from None


def read_csv(path: Path, sep: str = ",", **kwargs) -> Any:
    """`pandas.read_csv` of UTF-8 text (a BOM is fine), every cell a string, errors as
    `UserError`s; with `chunksize`, iterate it inside `csv_errors(path)`."""
    with csv_errors(path, "TSV" if sep == "\t" else "CSV"), warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            encoding_errors="strict",
            index_col=False,  # a ragged first row is an error, not a silent index column
            **kwargs,
        )


def _cell(value: object) -> str:
    """One cell as text: missing is "", and a whole float keeps its integer spelling (1.0: "1")."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a string, missing ones "", as `read_csv` reads a CSV (JSON's 0/1: "0"/"1")."""
    return pd.DataFrame(
        {
            str(name): (
                col.fillna("") if isinstance(col.dtype, pd.StringDtype) else col.map(_cell)
            ).astype(str)
            for name, col in frame.items()
        },
        index=frame.index,
    )


def _json_problem(path: Path, exc: Exception) -> str:
    """Where a JSON Lines file first goes wrong (`line N: why`), else pandas' reason."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                row = json.loads(line) if line.strip() else {}
            except json.JSONDecodeError as err:
                return f"line {number}, column {err.colno}: {err.msg.removesuffix(' at')}"
            if not isinstance(row, dict):
                return f"line {number}: not a JSON object"
    return " ".join(str(exc).split())


@contextlib.contextmanager
def json_errors(path: Path) -> Iterator[None]:
    """Turn pandas' encoding and JSON errors while reading `path` into `UserError`s."""
    try:
        yield
    except UnicodeDecodeError:
        raise UserError(f"data file {path} is not UTF-8 text; re-save it as UTF-8") from None
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"could not parse {path} as JSON Lines ({_json_problem(path, exc)}); fix the file: "
            f"each line must be one JSON object"
        ) from None


def read_jsonl(path: Path) -> pd.DataFrame:
    """A JSON Lines file as a frame of strings (see `strings`), errors as `UserError`s."""
    with json_errors(path):
        frame = pd.read_json(path, **JSON_OPTIONS)
    if frame.columns.empty:
        raise UserError(f"data file {path} has no rows; it needs one JSON object per line")
    return strings(frame)


@contextlib.contextmanager
def parquet_errors(path: Path) -> Iterator[None]:
    """Turn a missing pyarrow and Arrow's read errors for `path` into `UserError`s."""
    try:
        yield
    except ImportError:
        raise UserError(
            f"reading {path} needs pyarrow, the Parquet reader; pip install pyarrow"
        ) from None
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid and ArrowIOError among them
        reason = " ".join(str(exc).split()).split(": ", 1)[-1]
        raise UserError(
            f"could not read {path} as Parquet ({reason}); re-save it as Parquet, or give it "
            f"the extension of its real format (.csv, .tsv, .jsonl)"
        ) from None


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file as a frame of strings (see `strings`), errors as `UserError`s."""
    with parquet_errors(path):
        return strings(pd.read_parquet(path, dtype_backend="numpy_nullable"))


def read_table(path: Path, fmt: str) -> pd.DataFrame:
    """A headered data file of format `fmt` (see `file_format`) as a frame of strings."""
    if fmt == "JSON Lines":
        return read_jsonl(path)
    if fmt == "Parquet":
        return read_parquet(path)
    return read_csv(path, sep="\t" if fmt == "TSV" else ",")


def _distinct(frame: pd.DataFrame) -> dict[str, int]:
    """How many distinct non-blank values each column has."""
    counts = {}
    for name, col in frame.items():
        values = col.str.strip()
        counts[name] = values[values != ""].nunique()
    return counts


def _detect(path: Path, frame: pd.DataFrame, missing: str) -> tuple[str, str]:
    """Text and label columns of a two-column file: the label is the column with clearly fewer
    distinct values, at most half the other's and at most max(50, a tenth of the rows), like
    classes; else the columns look alike and the user must name them (`UserError`)."""
    counts = _distinct(frame)
    label, text = sorted(counts, key=counts.get)
    if counts[label] <= counts[text] / 2 and counts[label] <= max(50, len(frame) // 10):
        return text, label
    seen = ", ".join(f"{name!r} {n}" for name, n in counts.items())
    raise UserError(
        f"{path} has no column {missing!r}, and neither of its two columns is clearly the label "
        f"(distinct values: {seen}); found columns: {', '.join(map(repr, frame.columns))}; pass "
        f"{FLAGS} (data.text_column, data.label_column)"
    )


def _hint(found: list[str], fmt: str) -> str:
    """Why a delimited file may have come out as one column."""
    if len(found) != 1 or fmt not in ("CSV", "TSV"):
        return ""
    if fmt == "CSV" and "\t" in found[0]:
        return " (is it tab-separated? name it .tsv)"
    return " (is it comma-separated?)" if fmt == "CSV" else " (is it tab-separated?)"


def _columns(path: Path, frame: pd.DataFrame, cfg: DataConfig, fmt: str) -> tuple[str, str]:
    """The text and label columns: the configured names or, in a two-column file that lacks a
    default name, the user's one column and the other, or both detected (see `_detect`)."""
    text, label = cfg.text_column, cfg.label_column
    found = list(frame.columns)
    missing = [c for c in (text, label) if c not in found]
    if not missing:
        return text, label
    user_text, user_label = text != DEFAULTS.text_column, label != DEFAULTS.label_column
    if len(found) != 2 or (user_text and text in missing) or (user_label and label in missing):
        raise UserError(
            f"{path} has no column {missing[0]!r}{_hint(found, fmt)}; found columns: "
            f"{', '.join(map(repr, found))}; set data.text_column and data.label_column "
            f"({FLAGS}) to the right names"
        )
    if user_text:  # the user's text column is there: the label is the other one
        label = next(c for c in found if c != text)
    elif user_label:
        text = next(c for c in found if c != label)
    else:
        text, label = _detect(path, frame, missing[0])
    log.warning(
        "%s has no column %r: took %r as the text and %r as the label; pass %s to choose",
        path,
        missing[0],
        text,
        label,
        FLAGS,
    )
    return text, label


def _from_header(path: Path, cfg: DataConfig, fmt: str) -> tuple[pd.DataFrame, tuple[str, str]]:
    """Text and label columns of a headered file, by the configured or detected names."""
    frame = read_table(path, fmt)
    text, label = _columns(path, frame, cfg, fmt)
    return pd.DataFrame({"text": frame[text], "label": frame[label]}), (text, label)


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


def _layout(path: Path, cfg: DataConfig, fmt: str) -> str:
    """`ag_news` or `header`: as configured, else detected (only a CSV can be AG News)."""
    if fmt != "CSV" and cfg.format == "ag_news":
        raise UserError(
            f"data.format=ag_news is the headerless AG News CSV, but {path} is {fmt}; set "
            f"data.format=auto"
        )
    if cfg.format != "auto":
        return cfg.format
    return detect_layout(path) if fmt == "CSV" else "header"


def read_labelled(path: str | Path, cfg: DataConfig) -> LabelledData:
    """Read a labelled CSV, TSV, JSON Lines or Parquet file (by extension), dropping (and
    counting) rows whose text or label is empty; a two-column file without the configured
    columns has them detected, logged as a warning (see `_columns` and `_detect`)."""
    path = Path(path)
    _check_file(path)
    fmt = file_format(path)
    layout = _layout(path, cfg, fmt)
    columns = None
    if layout == "ag_news":
        frame = _from_ag_news(path, cfg)
    else:
        frame, columns = _from_header(path, cfg, fmt)
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
    return LabelledData(frame, dropped, layout, columns)
