"""`attnclf evaluate`: both CSV layouts, unseen labels, and metrics equal to scikit-learn's."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from typer.testing import CliRunner

from attnclf.cli import app
from attnclf.data.read import AG_NEWS_CLASSES, read_labelled
from attnclf.errors import UserError
from attnclf.evaluate import evaluate_run
from attnclf.predict.torch_backend import Predictor

ROWS = [
    ("Minister wins the election as parliament meets", "World"),
    ("Troops leave after a ceasefire deal", "World"),
    ("Embassy news: minister visits troops", "World"),
    ("Coach praises league after tennis match", "Sports"),
    ("Late goal wins the tournament", "Sports"),
    ("Tennis news: coach quits before the match", "Sports"),
    ("Stocks rise on profit and earnings", "Business"),
    ("Merger lifts shares as market rallies", "Business"),
    ("Market news: earnings beat forecasts", "Business"),
    ("NASA sends new software into space", "Sci/Tech"),
    ("Chip maker builds faster computer", "Sci/Tech"),
    ("Internet news: computer chip shortage", "Sci/Tech"),
    ("The of and", "Sports"),  # empty after preprocessing: skipped with a warning
]
ROOT = Path(__file__).resolve().parents[1]
CLASS_INDEX = {name: index for index, name in AG_NEWS_CLASSES.items()}


def write_header_csv(path: Path, rows: list[tuple[str, str]] = ROWS) -> Path:
    """The rows in the news.csv layout (title,category)."""
    lines = ["title,category", *(f'"{title}",{label}' for title, label in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_ag_news_csv(path: Path) -> Path:
    """The same rows in the original headerless AG News layout (class index, title, desc)."""
    lines = [f'"{CLASS_INDEX[label]}","{title}","A description."' for title, label in ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_both_layouts_give_the_training_metrics_layout(
    trained_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        header = evaluate_run(trained_run, write_header_csv(tmp_path / "header.csv"))
    assert "skipped 1 row(s)" in caplog.text
    ag_news = evaluate_run(trained_run, write_ag_news_csv(tmp_path / "ag_news.csv"))
    assert header == ag_news
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert header.keys() == trained.keys() and header["class"].keys() == trained["class"].keys()
    assert header["overall"].keys() == trained["overall"].keys()
    assert header["overall"]["num_samples"] == len(ROWS) - 1


def test_test_split_reproduces_the_runs_metrics(trained_run: Path, tmp_path: Path) -> None:
    """Same cleaning, tokens and model as in training: the test split scores as in metrics.json."""
    from attnclf.data.prepare import prepare
    from attnclf.encoding.preprocess import Preprocessor
    from attnclf.runfolder import read_config

    cfg = read_config(trained_run)
    test = prepare(cfg, cfg.data.path, Preprocessor.from_config(cfg.preprocess)).test
    rows = list(zip(test["text"], test["label"], strict=True))
    metrics = evaluate_run(trained_run, write_header_csv(tmp_path / "test.csv", rows))
    assert metrics == json.loads((trained_run / "metrics.json").read_text())


def test_metrics_equal_scikit_learn(trained_run: Path, tmp_path: Path) -> None:
    path = write_header_csv(tmp_path / "header.csv")
    metrics = evaluate_run(trained_run, path)
    predictor = Predictor.from_run(trained_run)
    frame = read_labelled(path, predictor.run.config.data).frame
    pairs = [
        (label, p.label)
        for label, p in zip(frame["label"], predictor.predict(frame["text"]), strict=True)
        if p.label is not None
    ]
    y_true, y_pred = zip(*pairs, strict=True)
    classes = predictor.run.labels.classes
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average="weighted", zero_division=0
    )
    o = metrics["overall"]
    assert (o["precision"], o["recall"], o["f1"]) == pytest.approx((p, r, f))
    assert o["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    _, _, macro, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average="macro", zero_division=0
    )
    assert o["macro_f1"] == pytest.approx(macro)
    per_class = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average=None, zero_division=0
    )
    for i, name in enumerate(classes):
        c = metrics["class"][name]
        ours = (c["precision"], c["recall"], c["f1"], c["num_samples"])
        assert ours == pytest.approx(tuple(float(v[i]) for v in per_class))
    cm = confusion_matrix(y_true, y_pred, labels=classes).tolist()
    assert metrics["confusion_matrix"] == {"labels": classes, "matrix": cm}


def test_unseen_labels_are_listed(trained_run: Path, tmp_path: Path) -> None:
    path = write_header_csv(tmp_path / "new.csv", [*ROWS, ("Rain", "Weather"), ("Vote", "Poll")])
    with pytest.raises(UserError) as err:
        evaluate_run(trained_run, path)
    assert "never saw: 'Poll', 'Weather'" in str(err.value)
    assert "knows only 'Business', 'Sci/Tech', 'Sports', 'World'" in str(err.value)


def test_cli_prints_table_and_writes_metrics_json(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "metrics.json"
    data = write_header_csv(tmp_path / "header.csv")
    args = ["evaluate", "--run", str(trained_run), "--data", str(data), "--output", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "precision" in result.stdout and "accuracy" in result.stdout
    assert json.loads(out.read_text()) == evaluate_run(trained_run, data)
    result = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "nope"), "--data", "x"])
    assert isinstance(result.exception, UserError) and "attnclf train" in str(result.exception)


@pytest.mark.slow
def test_smoke_run_on_the_10k_file(ag_news_10k: Path, tmp_path: Path) -> None:
    """The smoke config trained on the shared titles scores well and gets the lesson's example."""
    from attnclf.config import load_config
    from attnclf.training.train import train

    overrides = [f"data.path={ag_news_10k}", "train.num_threads=1"]
    run = train(load_config(ROOT / "tests" / "smoke.yaml", overrides), "smoke", tmp_path).run_dir
    assert evaluate_run(run, ag_news_10k)["overall"]["accuracy"] > 0.7
    (p,) = Predictor.from_run(run).predict(["The final tennis tournament starts next week."])
    assert p.label == "Sports" and p.tokens[:3] == ["final", "tennis", "tournament"]
