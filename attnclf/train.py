"""`attnclf train` as a library call: data to a complete, published run folder, resumable."""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from attnclf import run as runfiles
from attnclf.batching import TextDataset, make_loader
from attnclf.config import Config, TokenizerConfig
from attnclf.device import resolve_device, set_seed
from attnclf.distributed import DistContext, init_from_env, local_rank_zero_first, shutdown
from attnclf.download import ensure_data
from attnclf.errors import UserError
from attnclf.jsonio import write_bytes_atomic, write_json
from attnclf.labels import LabelEncoder
from attnclf.metrics import metrics_from_confusion
from attnclf.model import AttentionClassifier
from attnclf.plots import plot_confusion, plot_history
from attnclf.prepare import prepare
from attnclf.preprocess import Preprocessor
from attnclf.report import data_report
from attnclf.tokenizer import Tokenizer
from attnclf.trainer import Trainer, TrainingInterrupted

CHECKPOINT = "checkpoint.pt"


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; the CLI exits with 130."""


@dataclass
class TrainResult:
    """Where the run was written (None on ranks other than 0) and its test-split metrics."""

    run_dir: Path | None
    metrics: dict
    history: list[dict]


def _dataset(
    frame, tokenizer: Tokenizer, labels: LabelEncoder, tok: TokenizerConfig
) -> TextDataset:
    """Encode a split's cleaned texts and labels, truncated and padded as `tok` says."""
    sequences = tokenizer.texts_to_sequences(frame["clean"])
    return TextDataset(sequences, labels.encode(frame["label"]), tok.max_seq_len, tok.pad_to)


def _class_weights(
    cfg: Config, train_labels: torch.Tensor, num_classes: int
) -> torch.Tensor | None:
    """1/count per class (the lesson's weighting) when `train.class_weights` is `inverse`."""
    if cfg.train.class_weights == "none":
        return None
    return 1.0 / torch.bincount(train_labels, minlength=num_classes).float().clamp(min=1)


@contextlib.contextmanager
def _signal_handlers(handlers: dict[int, Callable]) -> Iterator[None]:
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

    return _signal_handlers({signal.SIGINT: handler, signal.SIGTERM: handler})


def _sigterm_as_ctrl_c() -> contextlib.AbstractContextManager:
    """Outside the training loop, SIGTERM raises KeyboardInterrupt like Ctrl-C, so cleanup runs."""
    return _signal_handlers({signal.SIGTERM: signal.default_int_handler})


def save_checkpoint(trainer: Trainer, path: Path) -> Path:
    """Write the trainer's resumable state with torch.save (read back with weights_only)."""
    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    return write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint without executing code: only tensors and plain data are accepted."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise UserError(
            f"{path} is not a valid attnclf checkpoint ({reason}); start a new run"
        ) from None


def train(
    cfg: Config, config_name: str = "config", output_dir: str | Path = "artifacts"
) -> TrainResult:
    """Train, evaluate on the test split and publish a run folder (rank 0 only under torchrun)."""
    device = resolve_device(cfg.train.device)
    ctx = init_from_env(device.type)
    created = not Path(output_dir).exists()
    try:
        staging = final = None
        if ctx.is_main:
            staging, final = runfiles.staging_dir(output_dir, config_name)
        return _train(cfg, device, ctx, staging, final, None)
    except BaseException:
        if created and ctx.is_main:  # a failed first run leaves no empty output folder behind
            with contextlib.suppress(OSError):
                Path(output_dir).rmdir()  # fails (and is kept) when it holds a checkpoint
        raise
    finally:
        shutdown(ctx)


def resume(staging: str | Path) -> TrainResult:
    """Continue an interrupted run from the checkpoint in its unfinished folder."""
    staging = Path(staging)
    if not (staging / CHECKPOINT).is_file():
        raise UserError(
            f"{staging} holds no {CHECKPOINT} to resume from; pass the folder printed when the "
            f"run was interrupted (artifacts/.<run>.incomplete)"
        )
    cfg = runfiles.load_run_config(staging)
    final = staging.with_name(staging.name.removeprefix(".").removesuffix(".incomplete"))
    device = resolve_device(cfg.train.device)
    ctx = init_from_env(device.type)
    try:
        return _train(cfg, device, ctx, staging if ctx.is_main else None, final, staging)
    finally:
        shutdown(ctx)


def _train(
    cfg: Config,
    device: torch.device,
    ctx: DistContext,
    staging: Path | None,
    final: Path | None,
    resume_from: Path | None,
) -> TrainResult:
    """Prepare data, fit (or continue fitting) and, on rank 0, publish the run folder."""
    try:
        with _sigterm_as_ctrl_c():
            result = _fit_and_publish(cfg, device, ctx, staging, final, resume_from)
    except BaseException:
        if staging is not None and not (staging / CHECKPOINT).exists():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _fit_and_publish(
    cfg: Config,
    device: torch.device,
    ctx: DistContext,
    staging: Path | None,
    final: Path | None,
    resume_from: Path | None,
) -> TrainResult:
    """The training pipeline proper; `resume_from` reuses a folder's encoders and checkpoint."""
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.backends.cudnn.benchmark = True
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    set_seed(cfg.train.seed)
    # Each node's first process fetches what is missing (data, stopwords); the others wait.
    path = local_rank_zero_first(ctx, lambda: ensure_data(cfg.data, progress=ctx.is_main))
    tok = cfg.tokenizer
    if resume_from is None:
        preprocessor = local_rank_zero_first(ctx, lambda: Preprocessor.from_config(cfg.preprocess))
        splits = prepare(cfg, path, preprocessor)
        tokenizer = Tokenizer(tok.level, tok.num_tokens, tok.min_freq).fit(splits.train["clean"])
        labels = LabelEncoder().fit(splits.train["label"])
    else:
        preprocessor, tokenizer, labels = runfiles.load_encoders(resume_from, cfg)
        splits = prepare(cfg, path, preprocessor)
    train_ds, val_ds, test_ds = (  # held on the device: batches are gathered there, no copies
        _dataset(f, tokenizer, labels, tok).to(device)
        for f in (splits.train, splits.val, splits.test)
    )
    loader_args = dict(rank=ctx.rank, world_size=ctx.world_size)
    train_loader = make_loader(
        train_ds,
        cfg.train.batch_size,
        shuffle=True,
        bucket=cfg.train.bucketing,
        seed=cfg.train.seed,
        **loader_args,
    )
    val_loader, test_loader = (
        make_loader(ds, cfg.train.eval_batch_size, shuffle=False, bucket=True, **loader_args)
        for ds in (val_ds, test_ds)
    )
    model = AttentionClassifier(len(tokenizer), len(labels), cfg.model).to(device)
    if cfg.model.naive_bayes > 0:  # closed form, same on every rank: each holds all of train
        model.fit_naive_bayes(train_ds.ids, train_ds.lengths, train_ds.labels)
    weights = _class_weights(cfg, train_ds.labels, len(labels))
    trainer = Trainer(model, cfg.train, device, len(labels), weights, ctx)
    state = load_checkpoint(resume_from / CHECKPOINT) if resume_from is not None else None
    if state is not None:
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[-1][:200]
            raise UserError(
                f"{resume_from / CHECKPOINT} does not fit this run ({reason}); start a new run"
            ) from None
    if staging is not None:
        runfiles.write_model_files(staging, cfg, preprocessor, tokenizer, labels)
    try:
        with _stop_on_signals(trainer):
            if ctx.is_main:
                print(
                    f"training on {device} ({ctx.world_size} process(es)): {len(train_ds)} train, "
                    f"{len(val_ds)} val, {len(test_ds)} test texts, {len(tokenizer)} tokens, "
                    f"{sum(p.numel() for p in model.parameters()):,} parameters"
                    + (
                        f"; resuming after epoch {trainer.epoch}, step {trainer.step}"
                        if state
                        else ""
                    ),
                    flush=True,
                )
            history = trainer.fit(train_loader, val_loader)
    except TrainingInterrupted:
        if staging is None:
            raise Interrupted("interrupted") from None
        save_checkpoint(trainer, staging / CHECKPOINT)
        raise Interrupted(
            f"interrupted during epoch {trainer.epoch + 1}; checkpoint saved. Resume with: "
            f"attnclf train --resume {staging}"
        ) from None
    _, cm = trainer.evaluate(test_loader)
    metrics = metrics_from_confusion(cm.numpy(), labels.classes)
    if staging is None or final is None:
        return TrainResult(None, metrics, history)
    runfiles.save_weights(model.state_dict(), staging / runfiles.WEIGHTS)
    write_json(staging / runfiles.METRICS, metrics)
    write_json(staging / runfiles.HISTORY, history)
    write_json(staging / runfiles.REPORT, data_report(splits, tok.max_seq_len))
    plot_history(history, staging / "learning_curves.png")
    plot_confusion(cm.tolist(), labels.classes, staging / "confusion_matrix.png")
    (staging / CHECKPOINT).unlink(missing_ok=True)
    return TrainResult(runfiles.publish(staging, final), metrics, history)
