"""`attnclf tune` as a library call: an Optuna study whose trials are training runs.

TPE samples each trial's config from the search space; the trial is built with the public
builder (`attnclf.training.build.build`) and fitted on the training split; the objective is
the validation weighted F1 of the epoch the trainer keeps. Each epoch's validation F1 reaches
Optuna through the trainer's logger (`TrialLogger`), so the median pruner can stop a trial
that trails the others. The test split is never read here.

Any Optuna storage URL works, so several processes (`jobs`, or `attnclf tune` started on other
machines with the same `--storage` and `--study`) share one study; the default is an SQLite
file in the tune folder, and rerunning the same command resumes the study.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.exceptions import StorageInternalError
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError
from tqdm.auto import tqdm

from attnclf.config import Config
from attnclf.errors import UserError
from attnclf.training.build import build
from attnclf.training.logger import ConsoleLogger
from attnclf.training.train import signal_handlers
from attnclf.tune.space import SearchSpace, apply

if TYPE_CHECKING:
    from attnclf.tracking import Tracker

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STUDY_DB = "study.db"


@dataclass
class TuneSpec:
    """What every worker process needs to join the study (picklable)."""

    base: Config
    space: SearchSpace
    study: str
    storage: str
    trials: int
    timeout: float | None = None
    tracker: Tracker | None = None
    parent_run: str | None = None
    stop: dict = field(default_factory=lambda: {"requested": False})


class TrialLogger(ConsoleLogger):
    """A silent trainer logger that reports each epoch's validation F1 to the trial, and
    prunes the trial when the study's pruner says so."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__(enabled=False)
        self.trial = trial

    def epoch(self, row: dict, epochs: int) -> None:
        """Report the epoch's validation F1; raise `optuna.TrialPruned` to stop the trial."""
        self.trial.report(row["val_f1"], row["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")


def storage_for(url: str) -> optuna.storages.BaseStorage | str:
    """The storage behind a URL; database URLs get heartbeats, so a killed worker's trial is
    marked failed instead of running forever, and SQLite waits for its lock."""
    if "://" not in url or url.startswith(("redis", "grpc")):
        return url
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    return _rdb_storage(url, engine)


def _rdb_storage(url: str, engine: dict | None, tries: int = 3) -> optuna.storages.RDBStorage:
    """An RDB storage; retried, since workers that start together race to create its tables."""
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=30, grace_period=120
            )
    except SQLAlchemyError:
        if tries <= 1:
            raise
        time.sleep(1.0)
        return _rdb_storage(url, engine, tries - 1)


def open_study(spec: TuneSpec) -> optuna.Study:
    """Create or load the study; refuse one that was started with another space or config."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=storage_for(spec.storage),
            study_name=spec.study,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),  # epoch 2 on
            load_if_exists=True,
        )
    except (ValueError, ImportError, SQLAlchemyError, StorageInternalError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UserError(
            f"cannot open the study storage {spec.storage} ({reason}); pass --storage an Optuna "
            f"storage URL such as sqlite:///tune.db"
        ) from None
    setup = {"space": spec.space.to_dict(), "config": spec.base.to_dict()}
    for key, value in setup.items():
        known = study.user_attrs.get(key)
        if known is None:
            study.set_user_attr(key, value)
        elif known != value:
            raise UserError(
                f"study {spec.study!r} in {spec.storage} was started with another {key}; "
                f"rerun with the same --space and --config, or pass a new --study name"
            )
    return study


def finished(study: optuna.Study, running: bool = False) -> int:
    """How many trials completed or were pruned (and, with `running`, are under way)."""
    states = (*FINISHED, TrialState.RUNNING) if running else FINISHED
    return len(study.get_trials(deepcopy=False, states=states))


def objective(spec: TuneSpec, trial: optuna.Trial) -> float:
    """Train one trial's config on the training split; its validation F1 (best epoch)."""
    cfg = apply(spec.base, spec.space.suggest(trial))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    tracker = spec.tracker
    run_id = tracker.start(f"trial {trial.number}", cfg, spec.parent_run) if tracker else None
    run, status = None, "FAILED"
    try:
        run = build(cfg, logger=TrialLogger(trial))
        run.trainer.fit(run.train_loader, run.val_loader)
        best = run.trainer.history[run.trainer.best_epoch - 1]
        trial.set_user_attr("best_epoch", run.trainer.best_epoch)
        trial.set_user_attr("epochs", run.trainer.epoch)
        status = "FINISHED"
        return best["val_f1"]
    except optuna.TrialPruned:
        status = "KILLED"
        raise
    finally:
        if tracker is not None:
            tracker.log_history(run_id, run.trainer.history if run else [])
            tracker.set_tags(run_id, {"attnclf.trial": trial.number, "attnclf.status": status})
            tracker.finish(run_id, status)


class _Progress:
    """A bar of the study's finished trials, with the best value and the time left."""

    def __init__(self, spec: TuneSpec, study: optuna.Study, jobs: int) -> None:
        self.spec, self.jobs, self.start = spec, jobs, time.monotonic()
        self.done_before = finished(study)
        self.bar = tqdm(  # no rate or ETA of its own: the postfix has one that knows --timeout
            total=spec.trials,
            initial=self.done_before,
            desc="trials",
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """After each of this process's trials: refresh the count, the best and the time left."""
        done = finished(study)
        elapsed = time.monotonic() - self.start
        per_trial = elapsed / max(done - self.done_before, 1)
        left = per_trial * max(self.spec.trials - done, 0) / self.jobs
        if self.spec.timeout is not None:
            left = min(left, max(self.spec.timeout - elapsed, 0))
        best = _best_value(study)
        self.bar.set_postfix_str(
            f"best {best:.4f}, ~{left / 60:.1f} min left" if best is not None else ""
        )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


def _best_value(study: optuna.Study) -> float | None:
    """The best objective so far, or None before any trial completed."""
    try:
        return study.best_value
    except ValueError:
        return None


def run_worker(spec: TuneSpec, progress: _Progress | None = None) -> None:
    """Run trials until the study has `spec.trials` of them, the timeout, or a stop request."""
    study = open_study(spec)
    remaining = spec.trials - finished(study, running=True)
    if remaining <= 0:
        return

    def stop_when_done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if spec.stop["requested"] or finished(study, running=True) >= spec.trials:
            study.stop()

    callbacks = [stop_when_done, *([progress] if progress else [])]
    study.optimize(
        lambda trial: objective(spec, trial),
        n_trials=remaining,
        timeout=spec.timeout,
        callbacks=callbacks,
        gc_after_trial=True,
    )


def _spawned_worker(spec: TuneSpec) -> None:
    """Entry point of a `jobs` worker process: stop after its trial on Ctrl-C, like the main.

    A spawned process starts without the CLI's logging set-up: the main process already
    reports the data warnings, so the worker shows errors only.
    """
    logging.getLogger("attnclf").setLevel(logging.ERROR)
    with stop_on_signals(spec.stop):
        run_worker(spec)


def stop_on_signals(stop: dict) -> contextlib.AbstractContextManager:
    """First Ctrl-C/SIGTERM: finish the current trial, then stop; a second one aborts at once."""

    def handler(signum: int, frame: object) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("stopping after the current trial (Ctrl-C again to abort it)", file=sys.stderr)

    return signal_handlers({signal.SIGINT: handler, signal.SIGTERM: handler})


def search(spec: TuneSpec, jobs: int = 1) -> optuna.Study:
    """Run the study in this process and `jobs - 1` more; returns it once all have stopped."""
    study = open_study(spec)
    data_log, once = logging.getLogger("attnclf.data"), _once()
    data_log.addFilter(once)
    progress = _Progress(spec, study, jobs)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spawned_worker, args=(spec,)) for _ in range(jobs - 1)]
    try:
        with stop_on_signals(spec.stop):
            for w in workers:
                w.start()
            run_worker(spec, progress)
    finally:
        progress.close()
        data_log.removeFilter(once)
        for w in workers:
            if w.pid is not None:  # started
                w.join()
    return study


def _once() -> Callable[[logging.LogRecord], bool]:
    """A logging filter that lets each message through once (data warnings, every trial)."""
    seen: set[str] = set()

    def allow(record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in seen:
            return False
        seen.add(text)
        return True

    return allow


def default_storage(folder: Path) -> str:
    """The embedded SQLite storage of a tune folder."""
    return f"sqlite:///{(folder / STUDY_DB).resolve()}"
