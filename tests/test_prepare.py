"""From a file to splits: the training-row subsample and descriptions as extra training texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnclf.config import load_config
from attnclf.data.prepare import prepare
from attnclf.errors import UserError

CLASSES = {"1": "world troops", "2": "tennis goal", "3": "stocks profit", "4": "chip software"}


def write_ag_news(path: Path, per_class: int = 50) -> Path:
    """A headerless AG News CSV: class index, title, description (tagged with the row number)."""
    rows = [
        f'"{c}","{words} title {i}","{words} description number{c}x{i}"'
        for c, words in CLASSES.items()
        for i in range(per_class)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def splits(path: Path, *overrides: str):
    """`prepare` with the built-in preprocessing (`auto`)."""
    cfg = load_config(None, [f"data.path={path}", *overrides])
    return prepare(cfg, path)


def test_train_rows_subsamples_the_train_split_only(tmp_path: Path) -> None:
    data = write_ag_news(tmp_path / "ag.csv")
    full, small = splits(data), splits(data, "data.train_rows=40")
    assert len(full.train) == 140 and len(small.train) == 40
    assert small.train["label"].value_counts().tolist() == [10, 10, 10, 10]  # stratified
    assert set(small.train["text"]) < set(full.train["text"])
    assert small.val.equals(full.val) and small.test.equals(full.test)
    assert splits(data, "data.train_rows=40").train.equals(small.train)  # seeded
    assert not splits(data, "data.train_rows=40", "data.split_seed=7").train.equals(small.train)
    assert splits(data, "data.train_rows=1000").train.equals(full.train)


def test_descriptions_become_extra_training_texts(tmp_path: Path) -> None:
    data = write_ag_news(tmp_path / "ag.csv")
    plain = splits(data)
    augmented = splits(data, "data.augment_with_description=true")
    assert len(augmented.train) == 2 * len(plain.train)
    extra = augmented.train.iloc[len(plain.train) :]
    assert extra["clean"].str.contains("description").all()
    assert extra["label"].tolist() == plain.train["label"].tolist()
    assert augmented.val.equals(plain.val) and augmented.test.equals(plain.test)


def test_augmenting_a_headered_csv_is_a_user_error(tmp_path: Path, news_csv: Path) -> None:
    with pytest.raises(UserError, match="needs the AG News layout"):
        splits(news_csv, "data.augment_with_description=true")
