"""Data files of every format (CSV, TSV, JSON Lines, Parquet) through train, evaluate and
predict; damaged files; column detection in two-column files; the CLI's data flags."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import TOPICS, CliResult

from attnclf.cli import _data_overrides
from attnclf.config import DataConfig, load_config
from attnclf.data.read import read_labelled
from attnclf.data.texts import read_texts
from attnclf.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "tests" / "smoke.yaml")
FAST = ["--set", "train.epochs=1", "--set", "train.num_threads=1"]
NOISE = ["week", "report", "new", "plan", "talks", "says", "first", "year"]


def topic_frame(per_class: int = 15, text: str = "title", label: str = "category") -> pd.DataFrame:
    """`per_class` made-up texts of each of the 4 `TOPICS`: 2 topic words, 3 noise words."""
    rng = random.Random(0)
    rows = [
        (" ".join(rng.sample(words.split(), 2) + rng.sample(NOISE, 3)), name)
        for name, words in TOPICS.items()
        for _ in range(per_class)
    ]
    return pd.DataFrame(rows, columns=[text, label])


def write(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` saved in the format that `path`'s extension names."""
    suffix = path.suffix
    if suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True)
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep="\t" if suffix in (".tsv", ".tab") else ",", index=False)
    return path


def one_line_error(result: CliResult, *fragments: str) -> str:
    """Assert exit code 2 and one `error:` line on stderr holding `fragments`; return it."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def train(run_cli: Callable[..., CliResult], out: Path, *args: str) -> Path:
    """`attnclf train` on the smoke config for one epoch; the run folder it wrote."""
    result = run_cli("train", "-c", SMOKE, "-o", out, *FAST, *args)
    assert result.exit_code == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("run folder: ")]
    return Path(line.removeprefix("run folder: "))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".parquet", ".pq"])
def test_every_extension_reads_the_same_frame(tmp_path: Path, suffix: str) -> None:
    frame = topic_frame(3)
    data = read_labelled(write(frame, tmp_path / f"data{suffix}"), DataConfig())
    assert data.layout == "header" and data.dropped == 0
    assert data.frame.to_dict("list") == {
        "text": frame["title"].tolist(),
        "label": frame["category"].tolist(),
    }


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_numbers_and_nulls_read_like_a_csv(tmp_path: Path, suffix: str) -> None:
    titles, labels = ["good", "bad", "so so", None, "fine"], [1, 0, None, 1, 10]
    frame = pd.DataFrame({"title": titles, "category": pd.array(labels, dtype="Int64")})
    data = read_labelled(write(frame, tmp_path / f"data{suffix}"), DataConfig())
    assert data.frame.to_dict("list") == {
        "text": ["good", "bad", "fine"],
        "label": ["1", "0", "10"],
    }
    assert data.dropped == 2


def test_ag_news_is_a_csv_layout_only(tmp_path: Path) -> None:
    path = write(topic_frame(2), tmp_path / "data.jsonl")
    with pytest.raises(UserError, match=r"data\.format=ag_news .* is JSON Lines; set data"):
        read_labelled(path, DataConfig(format="ag_news"))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_train_evaluate_predict_and_stats(
    run_cli: Callable[..., CliResult], tmp_path: Path, suffix: str
) -> None:
    frame = topic_frame()
    data = write(frame, tmp_path / f"news{suffix}")
    run = train(run_cli, tmp_path / "artifacts", "--data", data)
    evaluated = run_cli("evaluate", "--run", run, "--data", data)
    assert evaluated.exit_code == 0, evaluated.stderr
    assert "accuracy" in evaluated.stdout
    predicted = run_cli("predict", "--run", run, "--file", data, "--format", "json")
    assert predicted.exit_code == 0, predicted.stderr
    texts = [json.loads(line)["text"] for line in predicted.stdout.splitlines()]
    assert texts == frame["title"].tolist()
    stats = run_cli("data", "stats", data, "-c", SMOKE, "--json")
    assert stats.exit_code == 0, stats.stderr
    assert sum(json.loads(stats.stdout)["rows"].values()) == len(frame)


DAMAGED = {
    "latin1.csv": "title,category\nCaf\xe9 opens,Business\n".encode("latin-1"),
    "latin1.tsv": "title\tcategory\nCaf\xe9 opens\tBusiness\n".encode("latin-1"),
    "latin1.jsonl": '{"title": "Caf\xe9", "category": "Business"}\n'.encode("latin-1"),
    "ragged.tsv": b"title\tcategory\nStocks up\tBusiness\nGoal\tSports\textra\n",
    "ragged_first.tsv": b"title\tcategory\nStocks up\tBusiness\textra\nGoal\tSports\n",
    "truncated.jsonl": b'{"title": "Stocks up", "category": "Business"}\n{"title": "Goa',
    "garbled.jsonl": b'{"title": "Stocks up", "category": "Business"}\n{title: Goal}\n',
    "csv.parquet": b"title,category\nStocks up,Business\n",
    "truncated.parquet": b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00",
}


@pytest.mark.parametrize("name", DAMAGED)
def test_damaged_files_are_one_line_errors(
    run_cli: Callable[..., CliResult], tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(DAMAGED[name])
    line = one_line_error(run_cli("train", "-c", SMOKE, "--data", path, *FAST), str(path))
    assert any(word in line for word in ("UTF-8", "could not parse", "could not read"))


def test_jsonl_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(DAMAGED["garbled.jsonl"])
    with pytest.raises(UserError, match=r"as JSON Lines \(line 2, column \d+: .*\); fix the file"):
        read_labelled(path, DataConfig())


def test_two_columns_are_detected(
    run_cli: Callable[..., CliResult], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write(topic_frame(text="sentence", label="sentiment"), tmp_path / "data.csv")
    with caplog.at_level(logging.WARNING, logger="attnclf.data.read"):
        train(run_cli, tmp_path / "artifacts", "--data", data)
    assert "took 'sentence' as the text and 'sentiment' as the label" in caplog.text
    assert "--text-column and --label-column" in caplog.text


def test_detection_is_on_stderr_at_the_console(tmp_path: Path) -> None:
    frame = topic_frame(text="sentence", label="sentiment")[["sentiment", "sentence"]]
    data = write(frame, tmp_path / "data.jsonl")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "attnclf", "data", "stats", str(data), "-c", SMOKE]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "warning: " in done.stderr and "took 'sentence' as the text" in done.stderr


def test_one_given_column_makes_the_other_the_label(tmp_path: Path) -> None:
    data = write(topic_frame(2, text="a", label="b"), tmp_path / "data.tsv")
    assert read_labelled(data, DataConfig(text_column="a")).frame["label"].iloc[0] == "World"
    assert read_labelled(data, DataConfig(label_column="b")).frame["text"].iloc[0] != "World"


def test_many_classes_are_ambiguous(tmp_path: Path) -> None:
    rows = [(f"text number {i}", f"class {i % 60}") for i in range(120)]  # 60 > max(50, 12)
    data = write(pd.DataFrame(rows, columns=["x", "y"]), tmp_path / "data.csv")
    with pytest.raises(UserError, match="neither of its two columns is clearly the label"):
        read_labelled(data, DataConfig())


def test_ambiguous_two_columns_name_both_flags(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    frame = pd.DataFrame(
        {"left": [f"a {i}" for i in range(40)], "right": [f"b {i}" for i in range(40)]}
    )
    data = write(frame, tmp_path / "data.csv")
    one_line_error(
        run_cli("train", "-c", SMOKE, "--data", data, *FAST),
        "--text-column",
        "--label-column",
        "found columns: 'left', 'right'",
    )


def test_a_wrong_column_flag_is_an_error(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    data = write(topic_frame(2), tmp_path / "data.parquet")
    args = ["train", "-c", SMOKE, "--data", data, "--text-column", "headline", *FAST]
    one_line_error(run_cli(*args), "no column 'headline'", "'title', 'category'", "--text-column")


def test_more_than_two_columns_name_the_flags(tmp_path: Path) -> None:
    frame = topic_frame(2, text="headline", label="topic").assign(id="7")
    with pytest.raises(UserError, match=r"no column 'title'.*--text-column and --label-column"):
        read_labelled(write(frame, tmp_path / "data.csv"), DataConfig())


def test_data_flags_map_to_config_keys(tmp_path: Path) -> None:
    flags = {
        "--data": tmp_path / "train.csv",
        "--val": tmp_path / "val.jsonl",
        "--test": None,
        "--text-column": "yes",  # YAML would read a bare yes as true
        "--label-column": "null",
    }
    sets = ["data.text_column=body", *_data_overrides(flags)]  # the flags come last and win
    d = load_config(ROOT / "configs" / "default.yaml", sets).data
    assert (d.path, d.val_path, d.test_path) == (str(flags["--data"]), str(flags["--val"]), None)
    assert (d.text_column, d.label_column, d.url, d.checksum) == ("yes", "null", None, None)


def test_missing_data_file_is_not_downloaded(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    missing = tmp_path / "mine.csv"
    one_line_error(run_cli("train", "-c", SMOKE, "--data", missing, *FAST), "not found", "mine.csv")
    assert not missing.exists()


def test_resume_refuses_data_flags(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = run_cli("train", "--resume", tmp_path, "--data", "x.csv", "--text-column", "t")
    one_line_error(result, "--resume continues a run with its saved config", "--data, --text")


def test_evaluate_with_other_column_names(
    run_cli: Callable[..., CliResult], trained_run: Path, tmp_path: Path
) -> None:
    frame = topic_frame(3, text="headline", label="topic").assign(id="7")
    data = write(frame, tmp_path / "test.jsonl")
    args = ["evaluate", "--run", trained_run, "--data", data]
    one_line_error(run_cli(*args), "no column 'title'", "--text-column")
    result = run_cli(*args, "--text-column", "headline", "--label-column", "topic")
    assert result.exit_code == 0, result.stderr
    assert "accuracy" in result.stdout


def test_predict_a_jsonl_column(
    run_cli: Callable[..., CliResult], trained_run: Path, tmp_path: Path
) -> None:
    frame = topic_frame(2, text="c", label="other")
    data = write(frame, tmp_path / "in.jsonl")
    args = ["predict", "--run", trained_run, "--file", data, "--format", "json"]
    one_line_error(run_cli(*args), "no text column", "found columns: 'c', 'other'", "--text-column")
    result = run_cli(*args, "--text-column", "c")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(x)["text"] for x in result.stdout.splitlines()] == frame["c"].tolist()
    one_line_error(run_cli("predict", "--run", trained_run, "--text-column", "c", "hi"), "--file")


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet"])
def test_read_texts_streams_every_format(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("attnclf.data.texts.CHUNK_SIZE", 3)  # several chunks
    frame = pd.DataFrame({"id": range(8), "text": [f"t{i}" for i in range(8)]})
    path = write(frame, tmp_path / f"in{suffix}")
    assert list(read_texts(str(path), ["headline", "text"])) == frame["text"].tolist()
    assert list(read_texts(str(path), ["id"])) == [str(i) for i in range(8)]
    with pytest.raises(UserError, match="found columns: 'id', 'text'; pass --text-column"):
        list(read_texts(str(path), ["headline"]))


def test_read_texts_damaged_tables(tmp_path: Path) -> None:
    jsonl, parquet = tmp_path / "in.jsonl", tmp_path / "in.parquet"
    jsonl.write_bytes(b'{"text": "a"}\n{"text": \n')
    parquet.write_bytes(b"text\na\n")
    with pytest.raises(UserError, match=r"in\.jsonl as JSON Lines \(line 2"):
        list(read_texts(str(jsonl)))
    with pytest.raises(UserError, match=r"in\.parquet as Parquet"):
        list(read_texts(str(parquet)))


def test_val_and_test_files_in_other_formats(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    frame = topic_frame(20)
    val, test = frame.iloc[::5], frame.iloc[1::5]
    rest = frame.drop(val.index).drop(test.index)
    data = write(rest, tmp_path / "train.jsonl")
    args = ["--data", data, "--val", write(val, tmp_path / "val.tsv")]
    run = train(run_cli, tmp_path / "artifacts", *args, "--test", write(test, tmp_path / "t.pq"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["overall"]["num_samples"] == len(test)
