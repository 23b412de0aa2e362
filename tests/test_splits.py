"""Stratified seeded splits, `prepare` (read + clean + split) and the data report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from attnclf.config import Config, DataConfig, PreprocessConfig
from attnclf.data.prepare import Splits, prepare
from attnclf.data.report import data_report, format_report
from attnclf.data.splits import stratified_split
from attnclf.encoding.preprocess import Preprocessor
from attnclf.errors import UserError

COUNTS = {"Business": 200, "Sci/Tech": 63, "Sports": 100, "World": 41}


def make_frame(counts: dict[str, int]) -> pd.DataFrame:
    labels = [label for label, n in counts.items() for _ in range(n)]
    return pd.DataFrame({"text": [f"text {i}" for i in range(len(labels))], "label": labels})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame(COUNTS)


def test_sizes_70_15_15() -> None:
    train, val, test = stratified_split(make_frame({"a": 200, "b": 200}), DataConfig())
    assert (len(train), len(val), len(test)) == (280, 60, 60)
    assert list(train.columns) == ["text", "label"]
    assert list(train.index) == list(range(280))


@pytest.mark.parametrize("seed", [0, 1, 1234])
def test_stratified_within_one_row(frame: pd.DataFrame, seed: int) -> None:
    parts = stratified_split(frame, DataConfig(split_seed=seed))
    for part, share in zip(parts, (0.7, 0.15, 0.15), strict=True):
        counts = part["label"].value_counts()
        for label, n in COUNTS.items():
            assert abs(counts[label] - n * share) <= 1, (label, share)


def test_custom_sizes(frame: pd.DataFrame) -> None:
    cfg = DataConfig(train_size=0.8, val_size=0.1, test_size=0.1)
    train, val, test = stratified_split(frame, cfg)
    total = len(frame)
    assert abs(len(train) - 0.8 * total) <= 2
    assert abs(len(val) - 0.1 * total) <= 2
    assert len(train) + len(val) + len(test) == total


def test_every_row_exactly_once(frame: pd.DataFrame) -> None:
    train, val, test = stratified_split(frame, DataConfig())
    texts = [*train["text"], *val["text"], *test["text"]]
    assert len(texts) == len(set(texts)) == len(frame)
    assert set(texts) == set(frame["text"])
    assert not set(train["text"]) & set(val["text"])
    assert not set(train["text"]) & set(test["text"])
    assert not set(val["text"]) & set(test["text"])
    # each text keeps its own label
    original = dict(zip(frame["text"], frame["label"], strict=True))
    for part in (train, val, test):
        assert all(original[t] == lab for t, lab in zip(part["text"], part["label"], strict=True))


def test_same_seed_same_split(frame: pd.DataFrame) -> None:
    first = stratified_split(frame, DataConfig(split_seed=7))
    second = stratified_split(frame, DataConfig(split_seed=7))
    for a, b in zip(first, second, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_different_seed_different_split(frame: pd.DataFrame) -> None:
    a = stratified_split(frame, DataConfig(split_seed=1))
    b = stratified_split(frame, DataConfig(split_seed=2))
    assert set(a[1]["text"]) != set(b[1]["text"])
    assert set(a[2]["text"]) != set(b[2]["text"])


def test_single_class() -> None:
    with pytest.raises(UserError, match=r"single class \('World'\).*at least two"):
        stratified_split(make_frame({"World": 50}), DataConfig())


def test_class_too_small_is_named() -> None:
    counts = {"World": 50, "Sports": 50, "Rare": 3, "Tiny": 1}
    with pytest.raises(UserError) as err:
        stratified_split(make_frame(counts), DataConfig())
    message = str(err.value)
    assert "'Rare' (3)" in message and "'Tiny' (1)" in message
    assert "World" not in message and "Sports" not in message


def test_smallest_stratifiable_class() -> None:
    train, val, test = stratified_split(make_frame({"a": 40, "b": 40, "c": 7}), DataConfig())
    for part in (train, val, test):
        assert (part["label"] == "c").sum() >= 1


# --- prepare() -----------------------------------------------------------------------------


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    pd.DataFrame(rows, columns=["title", "category"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def preprocessor() -> Preprocessor:
    return Preprocessor.from_config(PreprocessConfig.lesson())


def test_prepare_drops_rows_emptied_by_cleaning(
    tmp_path: Path, news_csv: Path, preprocessor: Preprocessor, caplog: pytest.LogCaptureFixture
) -> None:
    rows = pd.read_csv(news_csv).itertuples(index=False, name=None)
    extra = [("The and of it", "World"), ("(Reuters)", "Sports"), ("!!!", "Business")]
    extra += [("", "World"), ("Lonely title", "")]
    path = write_csv(tmp_path / "mixed.csv", [*rows, *extra])
    with caplog.at_level(logging.WARNING):
        splits = prepare(Config(), path, preprocessor)
    assert splits.dropped_empty == 2
    assert splits.dropped_by_cleaning == 3
    assert splits.layout == "header"
    parts = (splits.train, splits.val, splits.test)
    assert sum(len(p) for p in parts) == 48
    for part in parts:
        assert list(part.columns) == ["text", "label", "clean"]
        assert (part["clean"] != "").all()
        assert part["clean"].tolist() == preprocessor.batch(part["text"].tolist())
    assert any("3 row(s)" in r.getMessage() for r in caplog.records)


def test_prepare_everything_emptied(tmp_path: Path, preprocessor: Preprocessor) -> None:
    path = write_csv(tmp_path / "stop.csv", [("the", "a"), ("of", "b")] * 10)
    with pytest.raises(UserError, match=r"empty after preprocessing.*preprocess\.stopwords"):
        prepare(Config(), path, preprocessor)


def test_prepare_uses_split_seed(news_csv: Path, preprocessor: Preprocessor) -> None:
    a = prepare(Config(), news_csv, preprocessor)
    b = prepare(Config(), news_csv, preprocessor)
    c = prepare(Config(data=DataConfig(split_seed=99)), news_csv, preprocessor)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert set(a.test["text"]) != set(c.test["text"])


# --- data_report ---------------------------------------------------------------------------


def splits_of(train: list[str], val: list[str], test: list[str]) -> Splits:
    def part(texts: list[str]) -> pd.DataFrame:
        labels = ["x" if i % 2 else "y" for i in range(len(texts))]
        return pd.DataFrame({"text": texts, "label": labels, "clean": texts})

    return Splits(part(train), part(val), part(test), 4, 2, "ag_news")


def test_report_leakage_counts() -> None:
    splits = splits_of(
        ["stocks rally", "goal scored", "chip launch", "vote count"],
        ["stocks rally", "new thing"],
        ["goal scored", "goal scored", "other story here", "chip launch"],
    )
    report = data_report(splits)
    assert report["in_train_verbatim"] == {"val": 1, "test": 3}


def test_report_fields() -> None:
    splits = splits_of(["a b c", "d e", "f"], ["a b c d"], ["g h i j k l"])
    report = data_report(splits, max_seq_len=3)
    assert report["layout"] == "ag_news"
    assert report["rows"] == {"train": 3, "val": 1, "test": 1}
    assert report["dropped"] == {"empty_text_or_label": 4, "empty_after_preprocessing": 2}
    assert report["classes"] == {
        "train": {"x": 1, "y": 2},
        "val": {"y": 1},
        "test": {"y": 1},
    }
    lengths = report["tokens_per_text"]
    assert lengths["min"] == 1 and lengths["max"] == 6
    assert lengths["mean"] == pytest.approx(3.2)
    assert lengths["median"] == 3.0
    assert report["longer_than_max_seq_len"] == 2
    assert report["in_train_verbatim"] == {"val": 0, "test": 0}
    assert "longer_than_max_seq_len" not in data_report(splits)
    json.dumps(report)  # plain JSON types only


def test_report_on_prepared_data_with_duplicates(
    tmp_path: Path, preprocessor: Preprocessor
) -> None:
    # every story appears twice, so most val/test rows also sit in train verbatim
    rows = [(f"Story number {i} about topic {i % 4}", f"class{i % 4}") for i in range(40)] * 2
    splits = prepare(Config(), write_csv(tmp_path / "dups.csv", rows), preprocessor)
    report = data_report(splits, 64)
    seen = set(splits.train["clean"])
    assert report["in_train_verbatim"]["val"] == int(splits.val["clean"].isin(seen).sum())
    assert report["in_train_verbatim"]["test"] == int(splits.test["clean"].isin(seen).sum())
    assert report["in_train_verbatim"]["val"] + report["in_train_verbatim"]["test"] > 0
    assert sum(report["rows"].values()) == 80
    assert sum(report["classes"]["train"].values()) == report["rows"]["train"]
    text = format_report(report)
    assert "rows: train 56, val 12, test 12" in text
    assert f"val {report['in_train_verbatim']['val']} of 12" in text
    for label in ("class0", "class1", "class2", "class3"):
        assert label in text
