"""`--track mlflow`: runs, trials as child runs, read back through MLflow's own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_topic_csv

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"


def smoke_args(data: Path) -> list[str]:
    """CLI options: the smoke config on `data`, 2 epochs, one thread."""
    sets = [f"data.path={data}", "train.epochs=2", "train.patience=2", "train.num_threads=1"]
    return ["-c", str(SMOKE), *[arg for s in sets for arg in ("--set", s)]]


def test_train_and_tune_are_logged_to_a_local_mlflow_store(tmp_path, monkeypatch, run_cli) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
    data = write_topic_csv(tmp_path / "news.csv")
    result = run_cli("train", *smoke_args(data), "-o", tmp_path / "runs", "--track", "mlflow")
    assert result.exit_code == 0, result.stderr
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {float: [1.0e-3, 1.0e-2], log: true}\n", encoding="utf-8")
    args = ["--space", space, "--trials", "2", "-o", tmp_path / "tune", "--track", "mlflow"]
    result = run_cli("tune", *smoke_args(data), *args)
    assert result.exit_code == 0, result.stderr

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tests")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    trained = next(r for name, r in runs.items() if name.endswith("-smoke"))
    assert trained.info.status == "FINISHED"
    assert trained.data.params["train.epochs"] == "2"
    assert trained.data.params["data.path"] == str(data)
    curve = client.get_metric_history(trained.info.run_id, "val_f1")
    assert [m.step for m in curve] == [1, 2]
    assert {"train_loss", "val_loss", "lr", "test_f1", "test_accuracy"} <= set(trained.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(trained.info.run_id)}
    assert {"model.safetensors", "metrics.json", "config.yaml"} <= artifacts

    parent = runs["tune smoke"]
    children = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId")]
    assert sorted(r.info.run_name for r in children) == ["trial 0", "trial 1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert all(len(client.get_metric_history(r.info.run_id, "val_loss")) == 2 for r in children)
    assert {"best_val_f1", "test_f1"} <= set(parent.data.metrics)
    assert "tune" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_a_failing_tracker_warns_and_the_run_folder_is_still_written(
    tmp_path, monkeypatch, run_cli, caplog
) -> None:
    pytest.importorskip("mlflow")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker / 'mlflow.db'}")
    data = write_topic_csv(tmp_path / "news.csv")
    result = run_cli("train", *smoke_args(data), "-o", tmp_path / "runs", "--track", "mlflow")
    assert result.exit_code == 0, result.stderr
    assert "MLflow tracking failed while starting run" in caplog.text
    assert (tmp_path / "runs" / "latest" / "model.safetensors").is_file()


def test_track_without_mlflow_is_a_one_line_error(tmp_path, monkeypatch, run_cli) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    result = run_cli("train", *smoke_args(tmp_path / "news.csv"), "--track", "mlflow")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --track mlflow needs MLflow: pip install 'attnclf[track]' (or mlflow-skinny)"
    ]


def test_nothing_imports_mlflow_without_track() -> None:
    code = (
        "import sys, attnclf.cli, attnclf.tune.run, attnclf.training.train; "
        "sys.exit('mlflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
