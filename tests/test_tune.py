"""`attnclf tune`: the search space, a real study, its report, resuming and shared storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import AG_NEWS_10K, write_topic_csv

from attnclf.config import load_config
from attnclf.errors import Interrupted, UserError
from attnclf.jsonio import read_json
from attnclf.tune.run import tune
from attnclf.tune.space import load_space, parse_space
from attnclf.tune.study import TrialLogger

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"
TINY_SPACE = {
    "train.lr": {"float": [1.0e-3, 1.0e-2], "log": True},
    "model.dropout": {"choice": [0.1, 0.3]},
}


def smoke(data: Path, *extra: str):
    """The smoke config on `data`, single-threaded and short."""
    return load_config(SMOKE, [f"data.path={data}", "train.num_threads=1", *extra])


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"train.lrate": {"float": [0.1]}},
            "unknown key train.lrate; valid keys in train: epochs,",
        ),
        ({"optim.lr": {"int": [1, 2]}}, "unknown config key 'optim.lr'; valid sections: data,"),
        ({"train.lr": {"float": [0.1, 0.01]}}, "train.lr: float needs low < high"),
        ({"train.lr": {"float": [0.0, 0.01]}}, "train.lr must be > 0, got 0"),
        ({"model.naive_bayes": {"float": [0.0, 2.0]}}, "model.naive_bayes must be <= 1, got 2.0"),
        ({"train.batch_size": {"float": [16, 64]}}, "train.batch_size is not a float: search it"),
        ({"train.batch_size": {"int": [16.5, 64]}}, "train.batch_size: int needs integer bounds"),
        ({"model.cell": {"int": [1, 3]}}, "model.cell is not a int: search it with choice"),
        ({"model.cell": {"choice": ["gru", "transformer"]}}, "model.cell must be one of 'rnn'"),
        ({"train.lr": {"float": [0.001, 0.01], "lg": True}}, "unknown option 'lg'; options of"),
        ({"train.lr": {"float": [0.001, 0.01], "log": True, "step": 0.001}}, "cannot be combined"),
        ({"model.dropout": {"float": [0.0, 0.5], "log": True}}, "log: true needs low > 0"),
        ({"train.lr": [0.001, 0.01]}, "train.lr needs exactly one of float, int or choice"),
        ({"train.lr": {"float": [0.001]}}, "train.lr: float needs [low, high]"),
        ([], "must be a YAML mapping of config keys"),
    ],
)
def test_space_errors_name_the_key_and_what_is_valid(space, message) -> None:
    with pytest.raises(UserError) as exc:
        parse_space(space, "space.yaml")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_shipped_space_parses_and_cli_reports_a_bad_space(tmp_path: Path, run_cli) -> None:
    keys = [p.key for p in load_space(ROOT / "configs" / "spaces" / "default.yaml").params]
    assert {"train.lr", "model.naive_bayes_alpha", "model.naive_bayes", "train.batch_size"} <= set(
        keys
    )
    bad = tmp_path / "space.yaml"
    bad.write_text("train.lr: {float: [1.0e-2, 1.0e-4]}\n", encoding="utf-8")
    result = run_cli("tune", "-c", SMOKE, "--space", bad, "-o", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: train.lr: float needs low < high, got [0.01, 0.0001]"
    ]
    assert not (tmp_path / "tune").exists()


@pytest.fixture(scope="module")
def study_10k(tmp_path_factory) -> tuple[Path, object]:
    """A real 3-trial study on the shared 10k AG News titles (smoke config, 2 epochs)."""
    if not AG_NEWS_10K.is_file():
        pytest.skip(f"shared data not found at {AG_NEWS_10K}")
    out = tmp_path_factory.mktemp("tune")
    base = smoke(AG_NEWS_10K, "train.epochs=2")
    return out, tune(base, parse_space(TINY_SPACE), "news", out, trials=3)


@pytest.mark.slow
def test_study_writes_report_and_best_yaml_retrains_to_the_same_validation_f1(study_10k) -> None:
    out, result = study_10k
    folder = out / "tune" / "news"
    assert result.folder == folder and result.finished == 3
    expected = "best.yaml best.json trials.csv study.db runs optimization_history.png"
    assert set(expected.split()) | {"param_importances.png"} >= {p.name for p in folder.iterdir()}
    assert set(expected.split()) <= {p.name for p in folder.iterdir()}
    trials = pd.read_csv(folder / "trials.csv")
    assert list(trials["number"]) == [0, 1, 2]
    assert set(trials["state"]) == {"COMPLETE"}
    assert {"train.lr", "model.dropout", "value", "seconds"} <= set(trials.columns)
    assert result.report.val_f1 == trials["value"].max()
    # `attnclf train -c best.yaml` trains exactly the config of the best run folder ...
    run_dir = result.report.run_dir
    best, trained = load_config(folder / "best.yaml"), load_config(run_dir / "config.yaml")
    assert best.model.temperature == "auto"  # chosen after training: retraining chooses again
    trained.model.temperature = "auto"
    assert best == trained
    # ... whose best epoch scores the best trial's validation F1 (same seed, same result).
    history = read_json(run_dir / "history.json")
    best_epoch = min(history, key=lambda row: row["val_loss"])
    assert best_epoch["val_f1"] == pytest.approx(result.report.val_f1, abs=1e-12)
    assert read_json(folder / "best.json")["test"] == read_json(run_dir / "metrics.json")["overall"]


def _interrupt_during(trial_number: int, monkeypatch) -> None:
    """Send this process SIGINT (Ctrl-C) at the first epoch of trial `trial_number`."""
    report = TrialLogger.epoch

    def epoch(self, row: dict, epochs: int) -> None:
        if self.trial.number == trial_number and row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)
        report(self, row, epochs)

    monkeypatch.setattr(TrialLogger, "epoch", epoch)


def test_ctrl_c_finishes_the_trial_and_rerunning_resumes_the_study(tmp_path, monkeypatch) -> None:
    base = smoke(write_topic_csv(tmp_path / "news.csv"), "train.epochs=2")
    space = parse_space(TINY_SPACE)
    _interrupt_during(1, monkeypatch)
    with pytest.raises(Interrupted, match="stopped after 2 finished trial"):
        tune(base, space, "s", tmp_path, trials=4)
    storage = f"sqlite:///{tmp_path / 'tune' / 's' / 'study.db'}"
    first = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state.name for t in first] == ["COMPLETE", "COMPLETE"]
    monkeypatch.undo()
    result = tune(base, space, "s", tmp_path, trials=4)
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and result.finished == 4
    assert [(t.params, t.value) for t in trials[:2]] == [(t.params, t.value) for t in first]
    with pytest.raises(UserError, match="was started with another space"):
        tune(base, parse_space({"train.lr": {"float": [1e-3, 1e-2]}}), "s", tmp_path, trials=4)


def test_two_processes_share_one_storage_without_losing_a_trial(tmp_path: Path) -> None:
    data = write_topic_csv(tmp_path / "news.csv")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {float: [1.0e-3, 1.0e-2], log: true}\n", encoding="utf-8")
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    args = [sys.executable, "-m", "attnclf", "tune", "-c", str(SMOKE), "--space", str(space)]
    args += ["--set", f"data.path={data}", "--set", "train.epochs=2", "--set"]
    args += ["train.num_threads=1", "--storage", storage, "--study", "shared", "--trials", "8"]
    workers = [
        subprocess.Popen([*args, "-o", str(tmp_path / f"out{i}")], stderr=subprocess.PIPE)
        for i in range(2)
    ]
    errors = [w.communicate(timeout=240)[1].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert sorted(t.number for t in trials) == list(range(8))
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
