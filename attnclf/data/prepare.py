"""From a labelled file to cleaned, stratified train/val/test frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attnclf.config import Config
from attnclf.data.read import read_labelled
from attnclf.data.splits import stratified_split, stratified_subsample
from attnclf.errors import UserError
from attnclf.preprocess import Preprocessor

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Train/val/test frames (columns text, clean, label) and what was dropped on the way."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    dropped_empty: int
    dropped_by_cleaning: int
    layout: str


def clean_frame(frame: pd.DataFrame, preprocessor: Preprocessor) -> pd.DataFrame:
    """Add the preprocessed text as column `clean`."""
    return frame.assign(clean=preprocessor.batch(frame["text"].tolist()))


def prepare(cfg: Config, path: str | Path, preprocessor: Preprocessor) -> Splits:
    """Read, clean and split a labelled file; rows that cleaning empties are dropped and counted."""
    data = read_labelled(path, cfg.data)
    frame = clean_frame(data.frame, preprocessor)
    emptied = frame["clean"] == ""
    if emptied.all():
        raise UserError(
            f"every text in {path} is empty after preprocessing; check data.text_column or turn "
            f"off some preprocess steps (e.g. --set preprocess.stopwords=false)"
        )
    if emptied.any():
        log.warning("dropped %d row(s) whose text is empty after preprocessing", int(emptied.sum()))
    train, val, test = stratified_split(frame[~emptied].reset_index(drop=True), cfg.data)
    if cfg.data.train_rows is not None:
        train = stratified_subsample(train, cfg.data.train_rows, cfg.data.split_seed)
    if cfg.data.augment_with_description:
        train = with_descriptions(train, preprocessor, path)
    return Splits(train, val, test, data.dropped, int(emptied.sum()), data.layout)


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
