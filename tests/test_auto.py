"""Choices made from the data: `preprocess: auto`, predefined splits, and the naive Bayes
weight and temperature chosen on validation after training."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from attnclf.config import load_config
from attnclf.data.prepare import prepare
from attnclf.metrics import calibration_error
from attnclf.predict.torch_backend import Predictor
from attnclf.training.train import train

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"
AUTO_STEPS = ("lowercase", "stopwords", "remove_parentheses", "remove_non_alphanumeric")
CONTENT = [
    "capital",
    "river",
    "author",
    "film",
    "company",
    "planet",
    "city",
    "war",
    "song",
    "number",
]


def write_questions(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Question types decided by the question word alone (a stopword): who/when/where/how."""
    rng = random.Random(seed)
    kinds = {"who": "HUM", "when": "NUM", "where": "LOC", "how": "DESC"}
    rows = ["text,label"]
    for i in range(n):
        word = list(kinds)[i % 4]
        rows.append(f"{word} is the {' '.join(rng.sample(CONTENT, 3))},{kinds[word]}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_noisy_topics(path: Path, n: int = 160, seed: int = 0) -> Path:
    """Topics decided by one content word among many random stopwords (noise to naive Bayes)."""
    rng = random.Random(seed)
    stop = [
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
        "is",
        "it",
        "that",
        "was",
        "for",
        "on",
        "with",
        "as",
        "at",
        "by",
        "an",
        "be",
        "this",
        "from",
    ]
    topics = {"sport": "goal match coach", "money": "stock bank price", "tech": "chip code web"}
    rows = ["text,label"]
    for i in range(n):
        label = list(topics)[i % 3]
        words = [rng.choice(topics[label].split()), *rng.choices(stop, k=12)]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def auto_config(path: Path, *extra: str):
    """The smoke config on a headered `text,label` file, preprocessing left to `auto`."""
    auto = [f"preprocess.{key}=auto" for key in AUTO_STEPS]
    data = [f"data.path={path}", "data.text_column=text", "data.label_column=label"]
    return load_config(SMOKE, [*data, *auto, *extra])


def test_auto_keeps_stopwords_for_question_types(tmp_path: Path) -> None:
    cfg = auto_config(write_questions(tmp_path / "q.csv"))
    splits = prepare(cfg, cfg.data.path)
    assert cfg.preprocess.stopwords is False  # resolved: "who"/"where" decide the class
    assert splits.preprocess_search["chosen"]["stopwords"] is False
    assert splits.train["clean"].str.split().str[0].isin(["who", "when", "where", "how"]).all()
    removed = [c for c in splits.preprocess_search["candidates"] if c["stopwords"]]
    assert removed and all(
        c["val_accuracy"] < splits.preprocess_search["chosen_val_accuracy"] for c in removed
    )


def test_auto_removes_stopwords_where_that_scores_better(tmp_path: Path) -> None:
    cfg = auto_config(write_noisy_topics(tmp_path / "t.csv"))
    search = prepare(cfg, cfg.data.path).preprocess_search
    assert cfg.preprocess.stopwords is True
    kept = [c for c in search["candidates"] if not c["stopwords"]]
    assert max(c["val_accuracy"] for c in kept) < search["chosen_val_accuracy"]


def test_fixed_steps_are_not_searched(tmp_path: Path) -> None:
    cfg = auto_config(write_questions(tmp_path / "q.csv"), "preprocess.stopwords=true")
    search = prepare(cfg, cfg.data.path).preprocess_search
    assert all(c["stopwords"] is True for c in search["candidates"])
    cfg = auto_config(
        write_questions(tmp_path / "q.csv"),
        *(f"preprocess.{k}=false" for k in ("lowercase", "stopwords", "remove_parentheses")),
        "preprocess.remove_non_alphanumeric=false",
    )
    assert prepare(cfg, cfg.data.path).preprocess_search is None


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One smoke run with every choice `auto`, trained on questions with a given test file."""
    tmp = tmp_path_factory.mktemp("auto")
    data = write_questions(tmp / "train.csv")
    test = write_questions(tmp / "test.csv", n=40, seed=1)
    cfg = auto_config(
        data,
        f"data.test_path={test}",
        "model.naive_bayes=auto",
        "model.temperature=auto",
        "train.num_threads=1",
    )
    run = train(cfg, "auto", tmp / "artifacts").run_dir
    assert cfg.preprocess.auto_keys() and cfg.model.temperature == "auto"  # the caller's is kept
    return run, test


def test_auto_choices_are_resolved_in_the_run_folder(auto_run: tuple[Path, Path]) -> None:
    run, _ = auto_run
    cfg = load_config(run / "config.yaml")
    assert cfg.preprocess.auto_keys() == []
    assert isinstance(cfg.model.naive_bayes, float) and isinstance(cfg.model.temperature, float)
    report = json.loads((run / "data_report.json").read_text())
    assert report["preprocess_search"]["chosen"]["stopwords"] is False
    assert report["calibration"]["naive_bayes"] == cfg.model.naive_bayes
    assert report["calibration"]["temperature"] == cfg.model.temperature
    assert report["calibration"]["val_loss_after"] <= report["calibration"]["val_loss_before"]


def test_predict_cleans_and_scores_as_training_did(auto_run: tuple[Path, Path]) -> None:
    run, test = auto_run
    predictor = Predictor.from_run(run)
    assert predictor.run.preprocessor("Who is the Author?") == "who is the author"
    texts = [line.split(",")[0] for line in test.read_text().splitlines()[1:]]
    labels = [line.split(",")[1] for line in test.read_text().splitlines()[1:]]
    predictions = list(predictor.predict_iter(texts))
    classes = predictor.run.labels.classes
    probs = np.array([[p.probabilities[c] for c in classes] for p in predictions])
    metrics = json.loads((run / "metrics.json").read_text())["overall"]
    accuracy = np.mean([p.label == y for p, y in zip(predictions, labels, strict=True)])
    assert metrics["accuracy"] == pytest.approx(accuracy)
    truth = np.asarray(predictor.run.labels.encode(labels))
    assert metrics["ece"] == pytest.approx(calibration_error(probs, truth), abs=1e-6)


def test_given_test_file_is_never_trained_on(tmp_path: Path) -> None:
    data = write_questions(tmp_path / "train.csv")
    test = write_questions(tmp_path / "test.csv", n=40, seed=1)
    val = write_questions(tmp_path / "val.csv", n=40, seed=2)
    cfg = auto_config(data, f"data.test_path={test}", f"data.val_path={val}")
    splits = prepare(cfg, cfg.data.path)
    assert len(splits.train) == 240 and len(splits.val) == 40 and len(splits.test) == 40
    assert splits.sources == {"train": str(data), "val": str(val), "test": str(test)}
    only_test = auto_config(data, f"data.test_path={test}")
    split = prepare(only_test, only_test.data.path)
    assert len(split.test) == 40 and len(split.train) + len(split.val) == 240
    assert len(split.val) == 24  # data.holdout_size: a tenth of the train file
    fifth = auto_config(data, f"data.val_path={val}", "data.holdout_size=0.2")
    assert len(prepare(fifth, fifth.data.path).test) == 48


def test_duplicates_across_files_are_reported_as_leakage(tmp_path: Path) -> None:
    from attnclf.data.report import data_report

    data = write_questions(tmp_path / "train.csv")
    lines = data.read_text().splitlines()
    test = tmp_path / "test.csv"
    test.write_text("\n".join([lines[0], *lines[1:6], *lines[-3:]]) + "\n", encoding="utf-8")
    cfg = auto_config(data, f"data.test_path={test}")
    report = data_report(prepare(cfg, cfg.data.path))
    assert report["rows"]["test"] == 8
    assert report["in_train_verbatim"]["test"] >= 5  # the questions repeat: most are in train


def test_test_file_with_unseen_label_is_one_line(tmp_path: Path, run_cli) -> None:
    data = write_questions(tmp_path / "train.csv")
    test = tmp_path / "test.csv"
    test.write_text("text,label\nwhat is a river,ENTY\n", encoding="utf-8")
    result = run_cli(
        "train", "-c", SMOKE, "--set", f"data.path={data}", "--set", f"data.test_path={test}",
        "--set", "data.text_column=text", "--set", "data.label_column=label",
        "-o", tmp_path / "artifacts",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "ENTY" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "artifacts" / "latest").exists()
