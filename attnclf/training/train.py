"""`attnclf train` as a library call: build a run, fit it, test it and publish its folder.

Resumable: Ctrl-C or SIGTERM saves a checkpoint in the unfinished run folder, and `resume`
continues from it exactly.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from attnclf.config import Config
from attnclf.data.report import data_report
from attnclf.errors import Interrupted, UserError
from attnclf.metrics import calibration_bins, error_from_bins, metrics_from_confusion
from attnclf.runfolder import RunFolder
from attnclf.training.build import Encoders, Pipeline, build
from attnclf.training.calibrate import calibrate
from attnclf.training.device import resolve_device
from attnclf.training.distributed import DistContext, all_reduce_sum_cpu, init_from_env, shutdown
from attnclf.training.loop import Trainer


@dataclass
class TrainResult:
    """Where the run was written (None on ranks other than 0) and its test-split metrics."""

    run_dir: Path | None
    metrics: dict
    history: list[dict]


def train(
    cfg: Config, config_name: str = "config", output_dir: str | Path = "artifacts"
) -> TrainResult:
    """Train, evaluate on the test split and publish a run folder (rank 0 only under torchrun)."""
    ctx = init_from_env(resolve_device(cfg.train.device).type)
    try:
        folder = RunFolder.create(output_dir, config_name) if ctx.is_main else None
        return _run(cfg, ctx, folder, resuming=False)
    finally:
        shutdown(ctx)


def resume(staging: str | Path) -> TrainResult:
    """Continue an interrupted run from the checkpoint in its unfinished folder."""
    folder = RunFolder.incomplete(staging)
    cfg = folder.read_config()
    ctx = init_from_env(resolve_device(cfg.train.device).type)
    try:
        return _run(cfg, ctx, folder, resuming=True)
    finally:
        shutdown(ctx)


def _run(cfg: Config, ctx: DistContext, folder: RunFolder | None, resuming: bool) -> TrainResult:
    """Build, restore, fit, test and publish; on any failure, clean up what was written."""
    writer = folder if ctx.is_main else None
    try:
        with _sigterm_as_ctrl_c():
            encoders = Encoders(*folder.read_encoders(cfg)) if resuming and folder else None
            run = build(cfg, ctx, encoders)
            cfg = run.cfg  # with the `auto` choices made from the data
            if resuming and folder is not None:
                _restore(run.trainer, folder)
            if writer is not None:
                e = run.encoders
                writer.save_encoders(cfg, e.preprocessor, e.tokenizer, e.labels)
            history = _fit(run, writer, resuming)
            calibration = calibrate(run.model, run.val_loader, cfg.model, ctx)
            metrics = _test(run)
            if writer is None:
                return TrainResult(None, metrics, history)
            report = data_report(run.splits, cfg.tokenizer.max_seq_len)
            report.update(run.embedding_reports)
            if run.splits.preprocess_search is not None:
                report["preprocess_search"] = run.splits.preprocess_search
            if calibration is not None:
                report["calibration"] = calibration
                writer.save_config(cfg)  # the values chosen on validation, resolved
            writer.write_results(run.model.state_dict(), metrics, history, report)
            return TrainResult(writer.publish(), metrics, history)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise


def _restore(trainer: Trainer, folder: RunFolder) -> None:
    """Load the trainer's state from an interrupted run's checkpoint."""
    try:
        trainer.load_state_dict(folder.load_checkpoint())
    except (KeyError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[-1][:200]
        raise UserError(
            f"{folder.checkpoint} does not fit this run ({reason}); start a new run"
        ) from None


def _announce(run: Pipeline, resuming: bool) -> None:
    """One line: the device, the data and the model's size (and where a resume starts)."""
    t = run.trainer
    params = sum(p.numel() for p in run.model.parameters())
    resumed = f"; resuming after epoch {t.epoch}, step {t.step}" if resuming else ""
    t.logger.message(
        f"training on {run.device} ({run.ctx.world_size} process(es)): {len(run.train_data)} "
        f"train, {len(run.val_data)} val, {len(run.test_data)} test texts, "
        f"{len(run.encoders.tokenizer)} tokens, {params:,} parameters{resumed}"
    )
    search = run.splits.preprocess_search
    if search is not None:
        from attnclf.encoding.preprocess_search import describe

        chosen = describe(run.encoders.preprocessor.cfg)
        t.logger.message(
            f"preprocessing chosen on {search['val_texts']} validation texts in "
            f"{search['seconds']:.1f} s ({len(search['candidates'])} candidates, naive Bayes "
            f"accuracy {search['chosen_val_accuracy']:.4f}): {chosen}"
        )
    for source, c in run.embedding_reports.items():
        origin = c["path"] if "path" in c else f"from the training texts in {c['seconds']:.1f} s"
        t.logger.message(
            f"{source.replace('_', ' ')} {origin}: {c['vocabulary_covered']} of "
            f"{c['vocabulary_size']} words ({c['vocabulary_coverage']:.1%}), "
            f"{c['train_token_coverage']:.1%} of training tokens"
        )


def _fit(run: Pipeline, writer: RunFolder | None, resuming: bool) -> list[dict]:
    """Train until done; a signal stops it cleanly, with a checkpoint to resume from."""
    trainer = run.trainer
    try:
        with _stop_on_signals(trainer):
            _announce(run, resuming)  # once this is printed, a signal saves a checkpoint
            return trainer.fit(run.train_loader, run.val_loader)
    except Interrupted:
        if writer is None:
            raise Interrupted("interrupted") from None
        writer.save_checkpoint(trainer.state_dict())
        raise Interrupted(
            f"interrupted during epoch {trainer.epoch + 1}; checkpoint saved. Resume with: "
            f"attnclf train --resume {writer.staging}"
        ) from None


def _test(run: Pipeline) -> dict:
    """The model's metrics on the test split (metrics.json's layout)."""
    _, cm = run.trainer.evaluate(run.test_loader)
    metrics = metrics_from_confusion(cm.numpy(), run.encoders.labels.classes)
    metrics["overall"]["ece"] = _test_calibration_error(run)
    return metrics


@torch.no_grad()
def _test_calibration_error(run: Pipeline) -> float:
    """Expected calibration error (15 bins) of the model's test probabilities, all ranks."""
    run.model.eval()
    stats = sum(
        calibration_bins(
            run.model.probabilities(b.ids.to(run.device), b.lengths)[0].cpu().numpy(),
            b.labels.cpu().numpy(),
        )
        for b in run.test_loader
    )
    return error_from_bins(all_reduce_sum_cpu(torch.as_tensor(stats), run.ctx, run.device).numpy())


@contextlib.contextmanager
def signal_handlers(handlers: dict[int, Callable]) -> Iterator[None]:
    """Install `handlers` for the block, then restore the previous ones (main thread only)."""
    try:
        previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stop_on_signals(trainer: Trainer) -> contextlib.AbstractContextManager:
    """First SIGINT/SIGTERM asks the trainer to stop cleanly; a second one aborts at once."""

    def handler(signum: int, frame: object) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True

    return signal_handlers({signal.SIGINT: handler, signal.SIGTERM: handler})


def _sigterm_as_ctrl_c() -> contextlib.AbstractContextManager:
    """Outside the training loop, SIGTERM raises KeyboardInterrupt like Ctrl-C, so cleanup runs."""
    return signal_handlers({signal.SIGTERM: signal.default_int_handler})
