"""Building a training run from a config: data, encoders, datasets, loaders, model, trainer.

Everything that happens before the first training step (spaCy's `init_nlp`), shared by
`attnclf train`, `--resume`, the benchmarks and anything else that trains. Nothing here
trains or writes files; `attnclf.training.train` runs and publishes what this builds.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from attnclf.config import Config
from attnclf.data.download import ensure_data
from attnclf.data.prepare import Splits, prepare
from attnclf.encoding.batching import TextDataset, make_loader
from attnclf.encoding.labels import LabelEncoder
from attnclf.encoding.preprocess import Preprocessor
from attnclf.encoding.tokenizer import Tokenizer
from attnclf.model.classifier import AttentionClassifier
from attnclf.model.corpus_vectors import ppmi_vectors
from attnclf.model.embeddings import coverage, read_vectors
from attnclf.training.device import resolve_device, set_seed
from attnclf.training.distributed import DistContext, local_rank_zero_first
from attnclf.training.logger import ConsoleLogger
from attnclf.training.loop import Trainer

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Encoders:
    """What turns raw text and labels into model inputs: fitted on the training split."""

    preprocessor: Preprocessor
    tokenizer: Tokenizer
    labels: LabelEncoder


@dataclass
class Pipeline:
    """A training run ready to start: its data, encoders, loaders, model and trainer."""

    cfg: Config
    device: torch.device
    ctx: DistContext
    splits: Splits
    encoders: Encoders
    train_data: TextDataset
    val_data: TextDataset
    test_data: TextDataset
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    model: AttentionClassifier
    trainer: Trainer
    embedding_reports: dict[str, dict] = field(default_factory=dict)  # where vectors came from


def encode(frame: pd.DataFrame, encoders: Encoders, cfg: Config) -> TextDataset:
    """A split's cleaned texts and labels as a dataset, truncated and padded as configured."""
    sequences = encoders.tokenizer.texts_to_sequences(frame["clean"])
    labels = encoders.labels.encode(frame["label"])
    return TextDataset(sequences, labels, cfg.tokenizer.max_seq_len, cfg.tokenizer.pad_to)


def class_weights(cfg: Config, train_labels: torch.Tensor, num_classes: int) -> torch.Tensor | None:
    """1/count per class (the lesson's weighting) when `train.class_weights` is `inverse`."""
    if cfg.train.class_weights == "none":
        return None
    return 1.0 / torch.bincount(train_labels, minlength=num_classes).float().clamp(min=1)


def process_device(cfg: Config, ctx: DistContext) -> torch.device:
    """This process's device, thread count and seed, set as `cfg.train` asks."""
    device = resolve_device(cfg.train.device)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.backends.cudnn.benchmark = True
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    set_seed(cfg.train.seed)
    return device


def initial_embeddings(
    model: AttentionClassifier, cfg: Config, tokenizer: Tokenizer, train_ids: torch.Tensor
) -> dict[str, dict]:
    """Start the embeddings from PPMI vectors and/or a vector file, as the config asks; a report
    on each (coverage, where from) for the run folder."""
    m, reports = cfg.model, {}
    if m.embedding_init == "ppmi":
        start = time.perf_counter()
        norm = m.embedding_init_std * m.embedding_dim**0.5  # the random start's expected length
        vectors, found = ppmi_vectors(
            train_ids, len(tokenizer), m.embedding_dim, norm, cfg.train.seed
        )
        model.load_embeddings(vectors, found)
        seconds = round(time.perf_counter() - start, 2)
        reports["ppmi_embeddings"] = {**coverage(found, train_ids), "seconds": seconds}
    if m.pretrained_embeddings is not None:
        path = m.pretrained_embeddings
        vectors, found, in_file = read_vectors(path, tokenizer.vocab, m.embedding_dim)
        model.load_embeddings(vectors, found)
        reports["pretrained_embeddings"] = {
            "path": str(path),
            "vectors_in_file": in_file,
            **coverage(found, train_ids),
        }
    return reports


def build(
    cfg: Config,
    ctx: DistContext | None = None,
    encoders: Encoders | None = None,
    logger: ConsoleLogger | None = None,
) -> Pipeline:
    """Everything a run needs before its first step; `encoders` reuses fitted ones (resume).

    Seeds every generator first, so the same config gives the same run. `cfg` itself is left
    as it is: the pipeline's own copy, `Pipeline.cfg`, holds the choices made from the data.
    """
    cfg = copy.deepcopy(cfg)
    ctx = ctx or DistContext()
    device = process_device(cfg, ctx)
    # Each node's first process fetches what is missing (data, stopwords); the others wait.
    path = local_rank_zero_first(ctx, lambda: ensure_data(cfg.data, progress=ctx.is_main))
    if encoders is None:  # `auto` preprocessing is chosen here (each node's rank 0 first:
        splits = local_rank_zero_first(ctx, lambda: prepare(cfg, path))  # it may fetch NLTK)
        tok = cfg.tokenizer
        encoders = Encoders(
            splits.preprocessor,
            Tokenizer(tok.level, tok.num_tokens, tok.min_freq).fit(splits.train["clean"]),
            LabelEncoder().fit(splits.train["label"]),
        )
    else:
        splits = prepare(cfg, path, encoders.preprocessor)
    train_data, val_data, test_data = (  # held on the device: batches are gathered there
        encode(frame, encoders, cfg).to(device) for frame in (splits.train, splits.val, splits.test)
    )
    t, shard = cfg.train, dict(rank=ctx.rank, world_size=ctx.world_size)
    train_loader = make_loader(
        train_data, t.batch_size, shuffle=True, bucket=t.bucketing, seed=t.seed, **shard
    )
    val_loader, test_loader = (
        make_loader(data, t.eval_batch_size, shuffle=False, bucket=True, **shard)
        for data in (val_data, test_data)
    )
    num_classes = len(encoders.labels)
    model = AttentionClassifier(len(encoders.tokenizer), num_classes, cfg.model).to(device)
    reports = initial_embeddings(model, cfg, encoders.tokenizer, train_data.ids)
    if model.naive_bayes is not None:  # closed form, same on every rank: each holds all of train
        model.fit_naive_bayes(train_data.ids, train_data.lengths, train_data.labels)
    weights = class_weights(cfg, train_data.labels, num_classes)
    trainer = Trainer(model, t, device, weights, ctx, logger, len(train_loader))
    return Pipeline(
        cfg,
        device,
        ctx,
        splits,
        encoders,
        train_data,
        val_data,
        test_data,
        train_loader,
        val_loader,
        test_loader,
        model,
        trainer,
        reports,
    )
