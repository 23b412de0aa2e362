"""Reading labelled CSVs: both layouts, detection, dropped rows and every user error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from attnclf.config import DataConfig
from attnclf.data.read import AG_NEWS_CLASSES, detect_layout, read_labelled
from attnclf.errors import UserError

AG_ROWS = (
    '"3","Wall St. Bears Claw Back (Reuters)","Reuters - Short-sellers\\are back."\n'
    '"1","Talks \\nin Geneva","Ministers met\\non Sunday."\n'
    '"2","Phelps Wins Gold","He swam."\n'
    '"4","New Chip, Faster","Intel said, ""soon""."\n'
)


def write(tmp_path: Path, content: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_header_layout(news_csv: Path) -> None:
    data = read_labelled(news_csv, DataConfig())
    assert data.layout == "header"
    assert data.dropped == 0
    assert list(data.frame.columns) == ["text", "label"]
    assert len(data.frame) == 48
    assert data.frame["label"].value_counts().to_dict() == {
        "World": 12,
        "Sports": 12,
        "Business": 12,
        "Sci/Tech": 12,
    }
    assert data.frame["text"][0] == "Minister election news parliament 0"


def test_header_layout_keeps_quoted_commas_and_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,title,category,extra\n7,"Stocks, bonds rally",Business,x\n')
    data = read_labelled(path, DataConfig())
    assert data.frame.to_dict("list") == {"text": ["Stocks, bonds rally"], "label": ["Business"]}


def test_ag_news_layout(tmp_path: Path) -> None:
    data = read_labelled(write(tmp_path, AG_ROWS), DataConfig())
    assert data.layout == "ag_news"
    assert data.dropped == 0
    assert data.frame["label"].tolist() == ["Business", "World", "Sports", "Sci/Tech"]
    assert data.frame["text"].tolist() == [
        "Wall St. Bears Claw Back (Reuters)",
        "Talks  in Geneva",
        "Phelps Wins Gold",
        "New Chip, Faster",
    ]


def test_ag_news_class_mapping() -> None:
    assert AG_NEWS_CLASSES == {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def test_ag_news_with_description(tmp_path: Path) -> None:
    data = read_labelled(write(tmp_path, AG_ROWS), DataConfig(use_description=True))
    texts = data.frame["text"].tolist()
    assert texts[0] == "Wall St. Bears Claw Back (Reuters) Reuters - Short-sellers are back."
    assert texts[1] == "Talks  in Geneva Ministers met on Sunday."
    assert texts[3] == 'New Chip, Faster Intel said, "soon".'
    assert not any("\\" in t for t in texts)


def test_ag_news_unknown_class_index_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, '"1","Kept","d"\n"5","Bad class","d"\n"2","","empty title"\n')
    data = read_labelled(path, DataConfig())
    assert data.frame.to_dict("list") == {
        "text": ["Kept"],
        "label": ["World"],
        "description": ["d"],
    }
    assert data.dropped == 2


def test_ag_news_with_utf8_bom_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + AG_ROWS.encode())
    data = read_labelled(path, DataConfig())
    assert data.layout == "ag_news"
    assert data.frame["label"].tolist()[0] == "Business"


def test_header_with_utf8_bom(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbftitle,category\nStocks up,Business\n")
    assert read_labelled(path, DataConfig()).frame["text"].tolist() == ["Stocks up"]


def test_shared_ag_news_file(ag_news_10k: Path) -> None:
    data = read_labelled(ag_news_10k, DataConfig())
    assert data.layout == "header"
    assert len(data.frame) + data.dropped == 10_000
    assert set(data.frame["label"]) == set(AG_NEWS_CLASSES.values())


def test_auto_detection(tmp_path: Path, news_csv: Path) -> None:
    assert detect_layout(news_csv) == "header"
    assert detect_layout(write(tmp_path, AG_ROWS, "ag.csv")) == "ag_news"
    # three columns but a non-class first field is a header
    assert detect_layout(write(tmp_path, "id,title,category\n1,a,b\n", "h.csv")) == "header"
    assert detect_layout(write(tmp_path, '"1","only two"\n', "two.csv")) == "header"


def test_forced_formats(tmp_path: Path) -> None:
    # a headered file whose header looks like AG News: forcing `header` reads it as a header
    path = write(tmp_path, "1,title,category\n0,Stocks up,Business\n")
    assert detect_layout(path) == "ag_news"
    data = read_labelled(path, DataConfig(format="header"))
    assert data.layout == "header"
    assert data.frame.to_dict("list") == {"text": ["Stocks up"], "label": ["Business"]}
    forced = read_labelled(write(tmp_path, AG_ROWS, "ag.csv"), DataConfig(format="ag_news"))
    assert forced.layout == "ag_news" and len(forced.frame) == 4


def test_forced_ag_news_on_wrong_column_count(tmp_path: Path, news_csv: Path) -> None:
    with pytest.raises(UserError, match=r"2 columns.*AG News layout has 3.*data\.format=header"):
        read_labelled(news_csv, DataConfig(format="ag_news"))


def test_custom_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "headline,topic,title\nMarkets slide,Business,ignored\n")
    data = read_labelled(path, DataConfig(text_column="headline", label_column="topic"))
    assert data.frame.to_dict("list") == {"text": ["Markets slide"], "label": ["Business"]}


def test_dropped_rows_are_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content = (
        "title,category\n"
        "Stocks up,Business\n"
        ",Business\n"  # empty text
        "   ,World\n"  # blank text
        "Goal!,\n"  # empty label
        "Match won,  \n"  # blank label
        "Rates cut,Business\n"
        ",\n"  # both empty
    )
    path = write(tmp_path, content)
    with caplog.at_level(logging.WARNING, logger="attnclf.data.read"):
        data = read_labelled(path, DataConfig())
    assert data.dropped == 5
    assert data.frame.to_dict("list") == {
        "text": ["Stocks up", "Rates cut"],
        "label": ["Business", "Business"],
    }
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 5 row(s)" in warnings[0].getMessage()


def test_no_warning_when_nothing_dropped(news_csv: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="attnclf.data.read"):
        read_labelled(news_csv, DataConfig())
    assert not caplog.records


def test_values_are_stripped_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "title,category\n  NA  , 1 \nnull,None\n")
    data = read_labelled(path, DataConfig())
    assert data.frame.to_dict("list") == {"text": ["NA", "null"], "label": ["1", "None"]}


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"data file not found: .*nope\.csv"):
        read_labelled(tmp_path / "nope.csv", DataConfig())


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        read_labelled(tmp_path, DataConfig())


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is empty"):
        read_labelled(write(tmp_path, ""), DataConfig())


def test_blank_lines_only(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no rows"):
        read_labelled(write(tmp_path, "\n\n"), DataConfig())


def test_header_only(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no rows with both a text and a label"):
        read_labelled(write(tmp_path, "title,category\n"), DataConfig())


def test_no_usable_rows(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no rows with both a text and a label"):
        read_labelled(write(tmp_path, "title,category\n,World\nText,\n"), DataConfig())


def test_missing_column_lists_found_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "headline,topic\nStocks up,Business\n")
    with pytest.raises(UserError) as err:
        read_labelled(path, DataConfig())
    message = str(err.value)
    assert "no column 'title'" in message
    assert "found columns: 'headline', 'topic'" in message
    assert "data.text_column" in message
    assert "comma" not in message


def test_missing_label_column(tmp_path: Path) -> None:
    path = write(tmp_path, "title,topic\nStocks up,Business\n")
    with pytest.raises(UserError, match="no column 'category'"):
        read_labelled(path, DataConfig())


def test_semicolon_delimited_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "title;category\nStocks up;Business\n")
    with pytest.raises(UserError, match=r"no column 'title' \(is it comma-separated\?\)"):
        read_labelled(path, DataConfig())


@pytest.mark.parametrize("where", ["first", "later"])
def test_non_utf8_bytes(tmp_path: Path, where: str) -> None:
    rows = ["title,category", "Caf\xe9 opens,Business"]
    if where == "later":
        rows[1:1] = ["Stocks up,Business"] * 5000
    path = write(tmp_path, ("\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(UserError, match="is not UTF-8 text"):
        read_labelled(path, DataConfig())


def test_malformed_csv(tmp_path: Path) -> None:
    path = write(tmp_path, 'title,category\n"unterminated,Business\n' + "a,b\n" * 3)
    with pytest.raises(UserError, match="could not parse"):
        read_labelled(path, DataConfig())
