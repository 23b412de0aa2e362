"""`attnclf train` as a library call: data to a complete, published run folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler

from attnclf import run as runfiles
from attnclf.batching import TextDataset, make_loader
from attnclf.config import Config
from attnclf.device import resolve_device, set_seed
from attnclf.distributed import DistContext, init_from_env, shutdown
from attnclf.download import ensure_data
from attnclf.jsonio import write_json
from attnclf.labels import LabelEncoder
from attnclf.metrics import metrics_from_confusion
from attnclf.model import AttentionClassifier
from attnclf.plots import plot_confusion, plot_history
from attnclf.prepare import prepare
from attnclf.preprocess import Preprocessor
from attnclf.report import data_report
from attnclf.tokenizer import Tokenizer
from attnclf.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where the run was written and what it scored on the test split."""

    run_dir: Path | None
    metrics: dict
    history: list[dict]


def _dataset(frame, tokenizer: Tokenizer, labels: LabelEncoder, max_len: int) -> TextDataset:
    """Encode a split's cleaned texts and labels."""
    return TextDataset(
        tokenizer.texts_to_sequences(frame["clean"]), labels.encode(frame["label"]), max_len
    )


def _class_weights(cfg: Config, train_labels: list[int], num_classes: int) -> torch.Tensor | None:
    """1/count per class (the lesson's weighting) when `train.class_weights` is `inverse`."""
    if cfg.train.class_weights == "none":
        return None
    counts = torch.bincount(torch.tensor(train_labels), minlength=num_classes).float()
    return 1.0 / counts.clamp(min=1)


def train(
    cfg: Config, config_name: str = "config", output_dir: str | Path = "artifacts"
) -> TrainResult:
    """Train, evaluate on the test split and publish a run folder (rank 0 only under torchrun)."""
    device = resolve_device(cfg.train.device)
    ctx = init_from_env(device.type)
    try:
        return _train(cfg, config_name, Path(output_dir), device, ctx)
    finally:
        shutdown(ctx)


def _train(
    cfg: Config, config_name: str, output_dir: Path, device: torch.device, ctx: DistContext
) -> TrainResult:
    """The body of `train`, once the device and process group are known."""
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.backends.cudnn.benchmark = True
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    set_seed(cfg.train.seed)
    path = ensure_data(cfg.data, progress=ctx.is_main)
    preprocessor = Preprocessor.from_config(cfg.preprocess)
    splits = prepare(cfg, path, preprocessor)
    report = data_report(splits, cfg.tokenizer.max_seq_len)
    tok = cfg.tokenizer
    tokenizer = Tokenizer(tok.level, tok.num_tokens, tok.min_freq).fit(splits.train["clean"])
    labels = LabelEncoder().fit(splits.train["label"])
    datasets = [
        _dataset(f, tokenizer, labels, tok.max_seq_len)
        for f in (splits.train, splits.val, splits.test)
    ]
    pin = device.type == "cuda"
    train_sampler = (
        DistributedSampler(datasets[0], ctx.world_size, ctx.rank, shuffle=True, seed=cfg.train.seed)
        if ctx.enabled
        else None
    )
    train_loader = make_loader(
        datasets[0],
        cfg.train.batch_size,
        shuffle=True,
        bucket=cfg.train.bucketing,
        seed=cfg.train.seed,
        sampler=train_sampler,
        pin_memory=pin,
    )
    val_loader, test_loader = (
        make_loader(
            ds,
            cfg.train.eval_batch_size,
            shuffle=False,
            bucket=True,
            pin_memory=pin,
            sampler=list(range(ctx.rank, len(ds), ctx.world_size)) if ctx.enabled else None,
        )
        for ds in datasets[1:]
    )
    model = AttentionClassifier(len(tokenizer), len(labels), cfg.model)
    weights = _class_weights(cfg, datasets[0].labels.tolist(), len(labels))
    trainer = Trainer(model, cfg.train, device, len(labels), weights, ctx)
    if ctx.is_main:
        print(
            f"training on {device} ({ctx.world_size} process(es)): {len(datasets[0])} train, "
            f"{len(datasets[1])} val, {len(datasets[2])} test texts, {len(tokenizer)} tokens, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters",
            flush=True,
        )
    history = trainer.fit(train_loader, val_loader)
    _, cm = trainer.evaluate(test_loader)
    metrics = metrics_from_confusion(cm.numpy(), labels.classes)
    if not ctx.is_main:
        return TrainResult(None, metrics, history)
    staging, final = runfiles.staging_dir(output_dir, config_name)
    runfiles.write_model_files(staging, cfg, preprocessor, tokenizer, labels)
    runfiles.save_weights(model.state_dict(), staging / runfiles.WEIGHTS)
    write_json(staging / runfiles.METRICS, metrics)
    write_json(staging / runfiles.HISTORY, history)
    write_json(staging / runfiles.REPORT, report)
    plot_history(history, staging / "learning_curves.png")
    plot_confusion(cm.tolist(), labels.classes, staging / "confusion_matrix.png")
    return TrainResult(runfiles.publish(staging, final), metrics, history)
