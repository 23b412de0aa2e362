"""A study's report in its tune folder: best.yaml, trials.csv, plots, best.json, the best run.

Every file is first written to a staging folder and then moved into place, so a crash leaves
the previous report; the best trial's run folder is published like any run folder, under
`runs/` (`runs/latest` points at it).
"""

from __future__ import annotations

import io
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from attnclf.config import Config, dump_config
from attnclf.errors import UserError
from attnclf.jsonio import read_json, write_bytes_atomic, write_json, write_text_atomic
from attnclf.runfolder import LATEST, METRICS, read_config
from attnclf.training.train import train
from attnclf.tune.space import apply

BEST_CONFIG = "best.yaml"
BEST = "best.json"
TRIALS = "trials.csv"
HISTORY_PLOT = "optimization_history.png"
IMPORTANCE_PLOT = "param_importances.png"
RUNS = "runs"


@dataclass
class Report:
    """The best trial: its number, params, validation F1, test metrics and run folder."""

    trial: int
    params: dict
    val_f1: float
    test: dict
    run_dir: Path


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, seconds, best epoch, worker, each param."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "seconds": seconds,
                "best_epoch": t.user_attrs.get("best_epoch"),
                "worker": t.user_attrs.get("worker"),
                **t.params,
            }
        )
    return pd.DataFrame(rows)


def best_run(folder: Path, cfg: Config) -> Path:
    """The best config's run folder: the last one if it trained this config, else a new one."""
    latest = folder / RUNS / LATEST
    if latest.is_dir() and dump_config(read_config(latest)) == dump_config(cfg):
        return latest.resolve()
    print(f"training the best config for its run folder and test metrics: {folder / RUNS}")
    return train(cfg, "best", folder / RUNS).run_dir


def write_report(study: optuna.Study, base: Config, folder: Path) -> Report:
    """Write the report of `study` (the trials so far) into its tune folder."""
    staging = folder / f".report.{os.getpid()}.incomplete"  # workers may share the folder
    shutil.rmtree(staging, ignore_errors=True)
    trials_table(study).to_csv(buf := io.StringIO(), index=False)
    write_text_atomic(staging / TRIALS, buf.getvalue())
    try:
        best = study.best_trial
    except ValueError:
        _publish(staging, folder)
        raise UserError(
            f"no trial of study {study.study_name!r} completed (see {folder / TRIALS}); "
            f"rerun to add trials"
        ) from None
    cfg = apply(base, best.params)
    header = (
        f"# attnclf tune: the best of study {study.study_name!r} (trial {best.number}, "
        f"validation F1 {best.value:.4f}). Retrain it with: attnclf train -c {BEST_CONFIG}\n"
    )
    write_text_atomic(staging / BEST_CONFIG, header + dump_config(cfg))
    _plots(study, staging)
    run_dir = best_run(folder, cfg)
    test = read_json(run_dir / METRICS)
    report = Report(best.number, best.params, best.value, test, run_dir)
    write_json(
        staging / BEST,
        {
            "study": study.study_name,
            "trial": best.number,
            "params": best.params,
            "val_f1": best.value,
            "test": test["overall"],
            "run": str(run_dir.resolve().relative_to(folder.resolve())),
        },
    )
    _publish(staging, folder)
    return report


def _plots(study: optuna.Study, staging: Path) -> None:
    """The optimisation history and, with 2+ completed trials, the parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    plots = {HISTORY_PLOT: ovm.plot_optimization_history}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) >= 2:
        plots[IMPORTANCE_PLOT] = ovm.plot_param_importances
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # e.g. too few trials to rank
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as exc:  # e.g. every trial drew the same params
                print(f"warning: no {name} ({exc})")
                continue
        fig = ax.figure
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        matplotlib.pyplot.close(fig)
        write_bytes_atomic(staging / name, buf.getvalue())


def _publish(staging: Path, folder: Path) -> None:
    """Move each staged file into the tune folder (each move atomic), then drop the staging."""
    for path in staging.iterdir():
        os.replace(path, folder / path.name)
    staging.rmdir()
