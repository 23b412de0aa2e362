"""Seeded, stratified train/validation/test splits (the lesson's 70/15/15 protocol)."""

from __future__ import annotations

import pandas as pd

from attnclf.config import DataConfig
from attnclf.errors import UserError


def stratified_split(
    frame: pd.DataFrame, cfg: DataConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split rows into train, val and test, preserving class proportions in each."""
    from sklearn.model_selection import train_test_split

    counts = frame["label"].value_counts()
    if len(counts) < 2:
        raise UserError(
            f"the data has a single class ({counts.index[0]!r}); a classifier needs at least two: "
            f"add rows of another class or check data.label_column"
        )
    holdout = cfg.val_size + cfg.test_size
    need = max(2, round(1 / min(cfg.val_size, cfg.test_size, cfg.train_size)))
    small = counts[counts < need]
    if not small.empty:
        listed = ", ".join(f"{label!r} ({n})" for label, n in small.items())
        raise UserError(
            f"class(es) too small to stratify into train/val/test: {listed}; each needs at least "
            f"{need} rows: add data or remove those rows"
        )
    try:
        train, rest = train_test_split(
            frame, test_size=holdout, stratify=frame["label"], random_state=cfg.split_seed
        )
        val, test = train_test_split(
            rest,
            test_size=cfg.test_size / holdout,
            stratify=rest["label"],
            random_state=cfg.split_seed,
        )
    except ValueError as exc:
        raise UserError(
            f"cannot split the data ({exc}); add data or change the split sizes"
        ) from None
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


def stratified_holdout(
    frame: pd.DataFrame, share: float, seed: int, name: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `frame` into the rest and a stratified `share` of it (the `name` split)."""
    from sklearn.model_selection import train_test_split

    try:
        rest, held = train_test_split(
            frame, test_size=share, stratify=frame["label"], random_state=seed
        )
    except ValueError as exc:
        raise UserError(
            f"cannot split a {name} split off the train file ({exc}); add rows, give the "
            f"{name} split as a file (--{name} FILE) or change data.holdout_size"
        ) from None
    return rest.reset_index(drop=True), held.reset_index(drop=True)


def stratified_subsample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most `rows` rows of `frame`, class proportions preserved, chosen by `seed`."""
    from sklearn.model_selection import train_test_split

    if rows >= len(frame):
        return frame
    try:
        kept, _ = train_test_split(
            frame, train_size=rows, stratify=frame["label"], random_state=seed
        )
    except ValueError as exc:
        raise UserError(
            f"cannot subsample {rows} training rows ({exc}); raise data.train_rows"
        ) from None
    return kept.reset_index(drop=True)
