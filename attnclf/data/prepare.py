"""From labelled files to cleaned, stratified train/val/test frames.

The split is made on the raw rows (or given as files: `data.val_path`, `data.test_path`), and
each split is cleaned afterwards, so every candidate preprocessing that `preprocess: auto`
weighs sees the same rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attnclf.config import Config
from attnclf.data.read import read_labelled
from attnclf.data.splits import stratified_holdout, stratified_split, stratified_subsample
from attnclf.encoding.preprocess import Preprocessor
from attnclf.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class RawSplits:
    """Train/val/test frames (columns text, label) before cleaning, and where they came from."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    dropped_empty: int
    layout: str
    sources: dict[str, str]  # split name -> the file it was read or split from


@dataclass
class Splits:
    """Train/val/test frames (columns text, clean, label) and what was dropped on the way."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    dropped_empty: int
    dropped_by_cleaning: int
    layout: str
    preprocessor: Preprocessor | None = None  # what cleaned them
    preprocess_search: dict | None = None  # `preprocess: auto`: the candidates and their scores
    sources: dict[str, str] | None = None


def clean_frame(frame: pd.DataFrame, preprocessor: Preprocessor) -> pd.DataFrame:
    """Add the preprocessed text as column `clean`."""
    return frame.assign(clean=preprocessor.batch(frame["text"].tolist()))


def _unseen_labels(raw: RawSplits) -> None:
    """Raise if a given validation or test file has labels the training rows never show."""
    known = set(raw.train["label"])
    for name in ("val", "test"):
        unseen = sorted(set(getattr(raw, name)["label"]) - known)
        if unseen:
            listed = ", ".join(map(repr, unseen[:5]))
            raise UserError(
                f"{raw.sources[name]} has label(s) that no training row has: {listed}; add "
                f"training rows of them or remove those rows"
            )


def read_splits(cfg: Config, path: str | Path) -> RawSplits:
    """Read the train file and any given val/test files; split off what is not given."""
    d = cfg.data
    data = read_labelled(path, d)
    if data.columns is not None:  # detected names are resolved: the run folder records them
        d.text_column, d.label_column = data.columns
    files = {"val": d.val_path, "test": d.test_path}
    given = {name: read_labelled(file, d) for name, file in files.items() if file is not None}
    if not given:
        train, val, test = stratified_split(data.frame, d)
        parts = {"train": train, "val": val, "test": test}
    else:
        parts = {"train": data.frame, **{name: read.frame for name, read in given.items()}}
        for name in sorted(files.keys() - given.keys()):  # split off the train file
            parts["train"], parts[name] = stratified_holdout(
                parts["train"], d.holdout_size, d.split_seed, name
            )
    sources = {"train": str(path)} | {n: str(files[n] or path) for n in files}
    dropped = data.dropped + sum(read.dropped for read in given.values())
    raw = RawSplits(parts["train"], parts["val"], parts["test"], dropped, data.layout, sources)
    _unseen_labels(raw)
    if d.train_rows is not None:
        raw.train = stratified_subsample(raw.train, d.train_rows, d.split_seed)
    return raw


def clean_splits(
    cfg: Config, raw: RawSplits, preprocessor: Preprocessor, path: str | Path
) -> Splits:
    """Clean every split; rows that cleaning empties are dropped and counted."""
    frames = {n: clean_frame(getattr(raw, n), preprocessor) for n in ("train", "val", "test")}
    emptied = {n: int((f["clean"] == "").sum()) for n, f in frames.items()}
    if emptied["train"] == len(frames["train"]):
        raise UserError(
            f"every text in {path} is empty after preprocessing; check data.text_column or turn "
            f"off some preprocess steps (e.g. --set preprocess.stopwords=false)"
        )
    if any(emptied.values()):
        log.warning(
            "dropped %d row(s) whose text is empty after preprocessing (train %d, val %d, test %d)",
            sum(emptied.values()),
            *emptied.values(),
        )
    frames = {n: f[f["clean"] != ""].reset_index(drop=True) for n, f in frames.items()}
    for name in ("val", "test"):
        if frames[name].empty:
            raise UserError(
                f"the {name} split of {raw.sources[name]} is empty after preprocessing; give "
                f"it more rows or turn off some preprocess steps"
            )
    train = frames["train"]
    if cfg.data.augment_with_description:
        train = with_descriptions(train, preprocessor, path)
    return Splits(
        train,
        frames["val"],
        frames["test"],
        raw.dropped_empty,
        sum(emptied.values()),
        raw.layout,
        preprocessor,
        sources=raw.sources,
    )


def prepare(cfg: Config, path: str | Path, preprocessor: Preprocessor | None = None) -> Splits:
    """Read, split and clean the labelled data; without a `preprocessor`, the config's own
    (its `auto` choices made on the validation split first)."""
    raw = read_splits(cfg, path)
    search = None
    if preprocessor is None:
        from attnclf.encoding.preprocess_search import resolve_preprocessing

        cfg.preprocess, search = resolve_preprocessing(cfg, raw)
        preprocessor = Preprocessor.from_config(cfg.preprocess)
    splits = clean_splits(cfg, raw, preprocessor, path)
    splits.preprocess_search = search
    return splits


def with_descriptions(
    train: pd.DataFrame, preprocessor: Preprocessor, path: str | Path
) -> pd.DataFrame:
    """The training rows, then each row's description as one more row of its class."""
    if "description" not in train.columns:
        raise UserError(
            f"data.augment_with_description needs the AG News layout (class index, title, "
            f"description), but {path} is a headered CSV; set it to false"
        )
    extra = clean_frame(train.assign(text=train["description"]), preprocessor)
    extra = extra[extra["clean"] != ""]
    return pd.concat([train, extra], ignore_index=True)
