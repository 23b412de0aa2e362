"""Experiment tracking with MLflow (`--track mlflow`): configs, learning curves, test metrics, run
folders.

Imported only when tracking is asked for, and MLflow only through `Tracker`. Tracking never
stops training: the first failure is a warning, and the tracker then does nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnclf.config import Config
from attnclf.errors import UserError

log = logging.getLogger(__name__)
EPOCH_METRICS = ("train_loss", "val_loss", "val_f1", "val_accuracy", "lr")
TEST_METRICS = ("f1", "accuracy", "precision", "recall", "macro_f1")


def flatten(cfg: Config) -> dict[str, str]:
    """Every config key as `section.key` -> its value as text (MLflow params are text)."""
    return {f"{s}.{k}": str(v) for s, values in cfg.to_dict().items() for k, v in values.items()}


@dataclass
class Tracker:
    """Logs runs to one MLflow experiment through MLflow's client; picklable for workers."""

    uri: str
    experiment: str = "attnclf"
    enabled: bool = True
    _client: Any = field(default=None, repr=False, compare=False)
    _experiment_id: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def mlflow(cls, output_dir: str | Path = "artifacts") -> Tracker:
        """A tracker at `MLFLOW_TRACKING_URI`, else an SQLite store `output_dir/mlflow.db`."""
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise UserError(
                "--track mlflow needs MLflow: pip install 'attnclf[track]' (or mlflow-skinny)"
            ) from None
        default = f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"
        uri = os.environ.get("MLFLOW_TRACKING_URI") or default
        return cls(uri, os.environ.get("MLFLOW_EXPERIMENT_NAME") or "attnclf")

    def __getstate__(self) -> dict:
        """Pickle the settings, not the client (worker processes open their own)."""
        return {**self.__dict__, "_client": None}

    @property
    def _local_store(self) -> Path | None:
        """The file of an SQLite store (None for servers and other databases)."""
        prefix = "sqlite:///"
        return Path(self.uri[len(prefix) :]) if self.uri.startswith(prefix) else None

    def _safely(self, what: str, action: Callable[[Any], Any]) -> Any:
        """Run `action(client)`; on any error warn once, turn tracking off and return None."""
        if not self.enabled:
            return None
        try:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                if self._local_store is not None:
                    self._local_store.parent.mkdir(parents=True, exist_ok=True)
                self._client = MlflowClient(self.uri)
            return action(self._client)
        except Exception as exc:
            self.enabled = False
            reason = " ".join(str(exc).split())[:300]
            log.warning("MLflow tracking failed while %s (%s); going on without it", what, reason)
            return None

    def _experiment(self, client: Any) -> str:
        """The experiment's id, created (artifacts next to an SQLite store) when missing."""
        if self._experiment_id is None:
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                store = self._local_store
                location = (store.parent / "mlruns").resolve().as_uri() if store else None
                self._experiment_id = client.create_experiment(self.experiment, location)
        return self._experiment_id

    def start(self, name: str, cfg: Config, parent: str | None = None) -> str | None:
        """Start a run (a child of `parent`) with the flattened config as params; its id."""
        from mlflow.entities import Param

        tags = {"mlflow.runName": name, **({"mlflow.parentRunId": parent} if parent else {})}

        def action(client: Any) -> str:
            run_id = client.create_run(self._experiment(client), tags=tags).info.run_id
            params = [Param(k, v) for k, v in flatten(cfg).items()]
            client.log_batch(run_id, params=params)
            return run_id

        return self._safely(f"starting run {name!r}", action)

    def log_history(self, run_id: str | None, history: list[dict]) -> None:
        """Per-epoch train/val loss, validation F1 and accuracy, and the learning rate."""
        rows = [(key, row[key], row["epoch"]) for row in history for key in EPOCH_METRICS]
        self._metrics(run_id, rows)

    def log_metrics(self, run_id: str | None, values: dict[str, float]) -> None:
        """Final values (step 0), e.g. `test_f1` or a trial's objective."""
        self._metrics(run_id, [(key, value, 0) for key, value in values.items()])

    def log_test(self, run_id: str | None, metrics: dict) -> None:
        """The test split's overall metrics (metrics.json's `overall`) as `test_*`."""
        overall = metrics["overall"]
        self.log_metrics(run_id, {f"test_{k}": overall[k] for k in TEST_METRICS})

    def _metrics(self, run_id: str | None, rows: list[tuple[str, float, int]]) -> None:
        """Log (key, value, step) rows, in batches of MLflow's maximum size."""
        if run_id is None or not rows:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value, step in rows]

        def action(client: Any) -> None:
            for i in range(0, len(metrics), 1000):
                client.log_batch(run_id, metrics=metrics[i : i + 1000])

        self._safely("logging metrics", action)

    def set_tags(self, run_id: str | None, tags: dict[str, Any]) -> None:
        """Tag a run (e.g. a trial's number and state)."""
        if run_id is not None:
            self._safely(
                "tagging", lambda c: [c.set_tag(run_id, k, str(v)) for k, v in tags.items()]
            )

    def log_folder(self, run_id: str | None, folder: str | Path, path: str | None = None) -> None:
        """Copy a folder (a run folder, a tune report) into the run's artifacts."""
        if run_id is not None:
            self._safely("logging artifacts", lambda c: c.log_artifacts(run_id, str(folder), path))

    def finish(self, run_id: str | None, status: str = "FINISHED") -> None:
        """End a run: FINISHED, FAILED or KILLED."""
        if run_id is not None:
            self._safely("ending the run", lambda c: c.set_terminated(run_id, status))

    def log_run(self, run_dir: Path, history: list[dict], metrics: dict) -> None:
        """A finished training run: its config, learning curves, test metrics and folder."""
        from attnclf.runfolder import read_config

        run_id = self.start(run_dir.name, read_config(run_dir))
        self.log_history(run_id, history)
        self.log_test(run_id, metrics)
        self.log_folder(run_id, run_dir)
        self.finish(run_id)
