"""`attnclf tune` as a library call: search, then write the tune folder's report."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from attnclf.config import Config
from attnclf.errors import Interrupted, UserError
from attnclf.tracking import Tracker
from attnclf.tune.report import Report, write_report
from attnclf.tune.space import SearchSpace
from attnclf.tune.study import TuneSpec, default_storage, finished, open_study, search


@dataclass
class TuneResult:
    """The tune folder, the best trial's report and how many trials the study has finished."""

    folder: Path
    report: Report
    finished: int


def tune(
    base: Config,
    space: SearchSpace,
    study: str,
    output_dir: str | Path = "artifacts",
    trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    jobs: int = 1,
    tracker: Tracker | None = None,
) -> TuneResult:
    """Tune `base` over `space` until the study has `trials` finished trials (or `timeout`
    seconds), then write `output_dir/tune/<study>/`; Ctrl-C stops after the current trial."""
    if trials < 1 or jobs < 1 or (timeout is not None and timeout <= 0):
        raise UserError("--trials and --jobs must be at least 1 and --timeout positive")
    folder = Path(output_dir) / "tune" / study
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {folder} ({exc.strerror}); pass a writable -o") from None
    spec = TuneSpec(base, space, study, storage or default_storage(folder), trials, timeout)
    try:
        parent = tracker.start(f"tune {study}", base) if tracker else None
        spec.tracker, spec.parent_run = tracker, parent
        result = search(spec, jobs)
    except BaseException:
        if created and storage is None and not _has_trials(spec):  # e.g. a missing data file
            shutil.rmtree(folder, ignore_errors=True)
        raise
    done = finished(result)
    if spec.stop["requested"]:
        if tracker:
            tracker.finish(parent, "KILLED")
        raise Interrupted(
            f"stopped after {done} finished trial(s), kept in {spec.storage}; rerun the same "
            f"command to resume the study"
        )
    report = write_report(result, base, folder)
    if tracker:
        tracker.log_metrics(parent, {"best_val_f1": report.val_f1, "trials": done})
        tracker.log_test(parent, report.test)
        tracker.set_tags(parent, {"attnclf.best_trial": report.trial})
        tracker.log_folder(parent, folder, "tune")
        tracker.finish(parent)
    return TuneResult(folder, report, done)


def _has_trials(spec: TuneSpec) -> bool:
    """Whether the study holds a finished trial (false too when it cannot be opened)."""
    try:
        return finished(open_study(spec)) > 0
    except Exception:
        return False
