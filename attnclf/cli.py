"""The `attnclf` command line: a thin Typer layer over the library (heavy imports stay lazy)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from attnclf import __version__
from attnclf.errors import UserError

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
) -> None:
    """Train a model and write a run folder (config, tokenizer, weights, metrics, plots)."""
    cfg = _load(config, overrides)
    from attnclf.metrics import format_metrics
    from attnclf.train import train as run_training

    result = run_training(cfg, config.stem if config else "default", output_dir)
    if result.run_dir is not None:
        typer.echo(format_metrics(result.metrics))
        typer.echo(f"run folder: {result.run_dir}")


@data_app.command("download")
def data_download(
    config: ConfigOpt = Path("configs/default.yaml"), overrides: SetOpt = None
) -> None:
    """Download the configured dataset into data/ (skipped when present and valid)."""
    cfg = _load(config, overrides)
    from attnclf.download import download

    if cfg.data.url is None:
        raise UserError("data.url is not set; pass --set data.url=URL to download a file")
    typer.echo(f"data file: {download(cfg.data.url, cfg.data.path, cfg.data.checksum)}")


@data_app.command("stats")
def data_stats(
    path: Annotated[Path, typer.Argument(help="A labelled CSV file.")],
    config: ConfigOpt = Path("configs/default.yaml"),
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rows, class balance, text lengths and train/test leakage of a labelled file."""
    import json

    from attnclf.prepare import prepare
    from attnclf.preprocess import Preprocessor
    from attnclf.report import data_report, format_report

    cfg = _load(config, overrides)
    splits = prepare(cfg, path, Preprocessor.from_config(cfg.preprocess))
    report = data_report(splits, cfg.tokenizer.max_seq_len)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
