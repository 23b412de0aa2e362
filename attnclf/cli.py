"""The `attnclf` command line: a thin Typer layer over the library (heavy imports stay lazy)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from attnclf import __version__
from attnclf.errors import Interrupted, UserError
from attnclf.predict import BACKENDS

if TYPE_CHECKING:
    from attnclf.predict.base import TextClassifier

app = typer.Typer(
    help="Train, evaluate and explain RNN + attention text classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config (defaults apply when omitted).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: section.key=value (repeatable)."),
]


TextColumnOpt = Annotated[
    str | None,
    typer.Option("--text-column", help="The file's text column (data.text_column)."),
]
LabelColumnOpt = Annotated[
    str | None,
    typer.Option("--label-column", help="The file's label column (data.label_column)."),
]
DATA_FLAGS = {  # train's data flags: the `data.` config key each one sets
    "--data": "path",
    "--val": "val_path",
    "--test": "test_path",
    "--text-column": "text_column",
    "--label-column": "label_column",
}


def _data_overrides(flags: dict[str, object]) -> list[str]:
    """train's data flags as `--set` overrides (JSON-quoted: YAML reads a name as a string); a
    `--data` file is never downloaded, so a missing one is a "not found" error."""
    sets = [f"data.{DATA_FLAGS[f]}={json.dumps(str(v))}" for f, v in flags.items() if v is not None]
    if flags["--data"] is not None:
        sets += ["data.url=null", "data.checksum=null"]
    return sets


class Track(str, Enum):
    """Experiment trackers that `--track` logs to."""

    mlflow = "mlflow"


TrackOpt = Annotated[
    Track | None, typer.Option("--track", help="Also log the run to MLflow (MLFLOW_TRACKING_URI).")
]


def _tracker(track: Track | None, output_dir: Path):
    """The tracker `--track` asks for (an error says how to install it), or None."""
    from attnclf.tracking import Tracker

    return Tracker.mlflow(output_dir) if track is Track.mlflow else None


@contextlib.contextmanager
def _exit_130(aborted: str) -> Iterator[None]:
    """A stop on a signal ends the command with exit code 130 and one line that says what
    was kept: the library's message for a clean stop, `aborted` for an abort."""
    try:
        yield
    except Interrupted as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo(aborted, err=True)
        raise typer.Exit(130) from None


def _version(value: bool) -> None:
    """Print the version and exit."""
    if value:
        typer.echo(f"attnclf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Train, evaluate and explain RNN + attention text classifiers."""


def _load(config: Path | None, overrides: list[str] | None):
    """The validated config from a file and `--set` overrides."""
    from attnclf.config import load_config

    return load_config(config, overrides or [])


@app.command()
def train(
    config: ConfigOpt = Path("configs/default.yaml"),
    overrides: SetOpt = None,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Folder that receives the run folder.")
    ] = Path("artifacts"),
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue an interrupted run from its .incomplete folder."),
    ] = None,
    track: TrackOpt = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "-d", help="Labelled CSV, TSV, JSON Lines or Parquet file (data.path)."
        ),
    ] = None,
    val: Annotated[
        Path | None, typer.Option("--val", help="Labelled validation file (data.val_path).")
    ] = None,
    test: Annotated[
        Path | None, typer.Option("--test", help="Labelled test file (data.test_path).")
    ] = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = None,
) -> None:
    """Train a model and write a run folder (config, tokenizer, weights, metrics, plots)."""
    from attnclf.metrics import format_metrics
    from attnclf.training import train as training

    flags = dict(zip(DATA_FLAGS, (data, val, test, text_column, label_column), strict=True))
    given = ["--set"] * bool(overrides) + [f for f, v in flags.items() if v is not None]
    if resume is not None and given:
        raise UserError(
            f"--resume continues a run with its saved config; drop the {', '.join(given)} options"
        )
    tracker = _tracker(track, output_dir)
    with _exit_130("interrupted without saving a checkpoint; no run folder was published"):
        if resume is not None:
            result = training.resume(resume)
        else:
            cfg = _load(config, [*(overrides or []), *_data_overrides(flags)])
            result = training.train(cfg, config.stem if config else "default", output_dir)
    if result.run_dir is not None:
        typer.echo(format_metrics(result.metrics))
        typer.echo(f"run folder: {result.run_dir}")
        if tracker is not None:
            tracker.log_run(result.run_dir, result.history, result.metrics)


@app.command()
def tune(
    config: ConfigOpt = Path("configs/default.yaml"),
    space: Annotated[
        Path, typer.Option("--space", help="Search space YAML: dotted config keys to ranges.")
    ] = Path("configs/spaces/default.yaml"),
    overrides: SetOpt = None,
    trials: Annotated[
        int, typer.Option("--trials", "-n", min=1, help="Finished trials the study should have.")
    ] = 20,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Start no trial after this many seconds.")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: the config's name).")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Optuna storage URL shared by workers (default: SQLite)."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Folder that receives the tune folder.")
    ] = Path("artifacts"),
    track: TrackOpt = None,
) -> None:
    """Search hyperparameters with Optuna; writes artifacts/tune/<study>/ with best.yaml."""
    from attnclf.metrics import format_metrics
    from attnclf.tune.run import tune as run_tune
    from attnclf.tune.space import load_space

    cfg, search_space = _load(config, overrides), load_space(space)
    name = study or (config.stem if config else "default")
    tracker = _tracker(track, output_dir)
    with _exit_130("aborted; the study keeps its finished trials: rerun to resume"):
        result = run_tune(
            cfg, search_space, name, output_dir, trials, timeout, storage, jobs, tracker
        )
    r = result.report
    typer.echo(
        f"best trial {r.trial} of {result.finished}: validation F1 {r.val_f1:.4f}, {r.params}"
    )
    typer.echo(format_metrics(r.test))
    typer.echo(
        f"tune folder: {result.folder} (retrain: attnclf train -c {result.folder}/best.yaml)"
    )


@data_app.command("download")
def data_download(
    config: ConfigOpt = Path("configs/default.yaml"), overrides: SetOpt = None
) -> None:
    """Download the configured dataset into data/ (skipped when present and valid)."""
    cfg = _load(config, overrides)
    from attnclf.data.download import download

    if cfg.data.url is None:
        raise UserError("data.url is not set; pass --set data.url=URL to download a file")
    typer.echo(f"data file: {download(cfg.data.url, cfg.data.path, cfg.data.checksum)}")


@data_app.command("stats")
def data_stats(
    path: Annotated[Path, typer.Argument(help="A labelled CSV, TSV, JSON Lines or Parquet file.")],
    config: ConfigOpt = Path("configs/default.yaml"),
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rows, class balance, text lengths and train/test leakage of a labelled file."""
    from attnclf.data.prepare import prepare
    from attnclf.data.report import data_report, format_report

    cfg = _load(config, overrides)
    splits = prepare(cfg, path)
    report = data_report(splits, cfg.tokenizer.max_seq_len)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


RunOpt = Annotated[Path, typer.Option("--run", "-r", help="Run folder written by `attnclf train`.")]


@app.command()
def evaluate(
    data: Annotated[
        Path,
        typer.Option(
            "--data", "-d", help="Labelled CSV (headered or AG News), TSV, JSON Lines or Parquet."
        ),
    ],
    run: RunOpt = Path("artifacts/latest"),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the metrics to this JSON.")
    ] = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = None,
) -> None:
    """Score a trained run on a labelled file, without retraining."""
    from attnclf.evaluate import evaluate_run
    from attnclf.jsonio import write_json
    from attnclf.metrics import format_metrics

    metrics = evaluate_run(run, data, text_column, label_column)
    typer.echo(format_metrics(metrics))
    if output is not None:
        typer.echo(f"metrics written to {write_json(output, metrics)}")


class OutputFormat(str, Enum):
    """How `attnclf predict` prints its answers."""

    table = "table"
    json = "json"


# What runs the model (torch: the run's weights; onnx: its `attnclf export` model), as
# `attnclf.predict` lists them.
Backend = Enum("Backend", {b: b for b in BACKENDS}, type=str)


BackendOpt = Annotated[
    Backend,
    typer.Option("--backend", help="torch, or onnx: the exported model.onnx, without torch."),
]


@app.command()
def predict(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to classify.", show_default=False)
    ] = None,
    run: RunOpt = Path("artifacts/latest"),
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            help="Texts from a .txt (one per line), a .csv/.tsv/.jsonl/.parquet, or - for stdin.",
        ),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option("--text-column", help="The --file table's text column (default: the run's)."),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", "-k", min=1, help="Show the K likeliest classes.")
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table, or json: one line per text.")
    ] = OutputFormat.table,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each token's influence and attention weight.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Save influence and attention heatmaps (FILE-N.png for several texts)."
        ),
    ] = None,
    backend: BackendOpt = Backend.torch,
) -> None:
    """Classify texts with a trained run; --explain shows each token's influence and attention."""
    from attnclf.predict import freeze_loaded, load
    from attnclf.render import format_prediction, plot_prediction

    if bool(texts) == (file is not None):
        raise UserError("give the texts to classify as arguments or with --file FILE, not both")
    if text_column is not None and file is None:
        raise UserError("--text-column names a --file table's column; pass --file FILE or drop it")
    predictor = load(run, backend.value)
    freeze_loaded()
    single = file is None and len(texts) == 1
    explained = explain or plot is not None
    if single:
        predictions = iter([predictor.predict_one(texts[0], top_k, explained)])
    else:
        source = texts if file is None else _read_file(predictor, file, text_column)
        predictions = predictor.predict_iter(source, top_k, explained)
    truncated = 0
    for i, p in enumerate(predictions, start=1):
        truncated += p.truncated
        typer.echo(p.to_json() if fmt is OutputFormat.json else format_prediction(i, p, explain))
        if plot is not None and p.label is not None:
            path = plot if single else plot.with_name(f"{plot.stem}-{i}{plot.suffix}")
            typer.echo(f"explanation plot: {plot_prediction(p, path)}", err=True)
    warning = predictor.truncation_warning(truncated)
    if warning:
        typer.echo(f"warning: {warning}", err=True)


def _read_file(predictor: TextClassifier, file: str, text_column: str | None) -> Iterator[str]:
    """The texts of `--file`: from `text_column` of a table when given, else as the run reads."""
    from attnclf.data.texts import read_texts

    return predictor.read(file) if text_column is None else read_texts(file, [text_column])


def _framework_error(exc: typer.TyperException) -> str:
    """An error found by the CLI framework (a bad option value, say) as one line with a hint."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    return f"{message}; see `{ctx.command_path} --help`" if ctx is not None else message


@app.command()
def serve(
    run: RunOpt = Path("artifacts/latest"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    backend: BackendOpt = Backend.torch,
    max_texts: Annotated[
        int, typer.Option("--max-texts", min=1, help="Most texts in one request.")
    ] = 1_000,
    max_chars: Annotated[
        int, typer.Option("--max-chars", min=1, help="Most characters in one text.")
    ] = 10_000,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0.001, help="Largest request body, in MiB.")
    ] = 16.0,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="Backend threads per worker process.")
    ] = 1,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            "--batch-wait-ms", min=0, max=1000, help="How long a batch waits for more requests."
        ),
    ] = 0.0,
    passes: Annotated[
        int | None,
        typer.Option(
            "--passes",
            min=1,
            help="Forward passes side by side per worker while a full batch waits "
            "[default: usable cores / workers].",
        ),
    ] = None,
) -> None:
    """Serve a trained run over HTTP: POST /predict, GET /health, GET /metadata, /docs."""
    from attnclf.serve import ServeLimits
    from attnclf.serve import serve as run_server

    limits = ServeLimits(
        max_texts,
        max_chars,
        int(max_body_mb * 2**20),
        max_wait_ms=batch_wait_ms,
        threads=threads,
        passes=passes,
    )
    run_server(run, host, port, backend.value, workers, limits)


@app.command()
def export(
    run: RunOpt = Path("artifacts/latest"),
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write (default RUN/model.onnx).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Check on this file's test split, not the run's data."),
    ] = None,
) -> None:
    """Export a run's whole model as ONNX, checked against torch on the test split."""
    if fmt != "onnx":
        raise UserError(f"unknown export format {fmt!r}; the only format is onnx")
    from attnclf.export import export_run

    result = export_run(run, output, data)
    typer.echo(
        f"checked on {result.texts:,} test texts: max probability difference "
        f"{result.max_difference:.1e} (onnxruntime vs torch)"
    )
    typer.echo(f"onnx model: {result.path}")


def main() -> None:
    """Console entry point: user and usage errors become one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    try:
        code = app(prog_name="attnclf", standalone_mode=False)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown options, values out of range
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `attnclf`: the help, as typer does
            typer.echo(exc.ctx.get_help())
        else:
            typer.echo(f"error: {_framework_error(exc)}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def entry() -> None:
    """Process entry point: `main`, then exit without the interpreter's teardown.

    Tearing down a loaded torch takes ~0.5 s, a fifth of a cold `attnclf predict`; every file
    is closed by then, so only the standard streams and logging need flushing.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
