"""Datasets of encoded texts, per-batch padding, and length-bucketed batch sampling."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np
import torch
from more_itertools import chunked
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


class Batch(NamedTuple):
    """Padded token ids [B, L], their lengths [B] and class indices [B]."""

    ids: Tensor
    lengths: Tensor
    labels: Tensor


class TextDataset(Dataset):
    """Token-id sequences (truncated to `max_len`) with their labels.

    Batches are padded to their longest sequence, but to at least `pad_to` positions.
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        labels: Sequence[int],
        max_len: int,
        pad_to: int | None = None,
    ) -> None:
        if len(sequences) != len(labels):
            raise ValueError("sequences and labels differ in length")
        lengths = [min(len(s), max_len) for s in sequences]
        flat = chain.from_iterable(s[:max_len] for s in sequences)
        tokens = torch.from_numpy(np.fromiter(flat, dtype=np.int64, count=sum(lengths)))
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.pad_to = pad_to or 1
        self.ids = torch.zeros(len(sequences), max([self.pad_to, *lengths]), dtype=torch.long)
        # One scatter in row-major order instead of a Python loop over rows.
        self.ids[torch.arange(self.ids.shape[1]) < self.lengths[:, None]] = tokens
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> TextDataset:
        """Move ids and labels to `device`, so batches need no copy; lengths stay on the CPU."""
        self.ids, self.labels = self.ids.to(device), self.labels.to(device)
        return self

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """One unpadded sequence and its label."""
        return self.ids[index, : self.lengths[index]], self.labels[index]

    def __getitems__(self, indices: list[int]) -> Batch:
        """The samples at `indices`, padded to their longest sequence or `pad_to` (one gather)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        lengths = self.lengths[index]
        width = max(self.pad_to, int(lengths.max()))
        rows = index.to(self.ids.device, non_blocking=True)
        return Batch(self.ids[rows, :width], lengths, self.labels[rows])


def collate(batch: Batch) -> Batch:
    """DataLoader `collate_fn`: `TextDataset.__getitems__` has already padded the batch."""
    return batch


class BucketBatchSampler(Sampler[list[int]]):
    """Groups the indices of any sampler into batches of similar length to cut padding.

    Indices are drawn from `sampler` (random, sequential or distributed), taken in pools of
    `pool_batches` batches, sorted by length inside each pool, cut into batches, and the
    batches are shuffled, so every sample appears exactly once and randomness is kept.
    """

    def __init__(
        self,
        sampler: Sampler[int] | range,
        lengths: Tensor,
        batch_size: int,
        bucket: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
    ) -> None:
        self.sampler = sampler
        self.lengths = lengths.tolist()
        self.batch_size = batch_size
        self.bucket = bucket
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed the batch order (and a distributed sampler's shards) for `epoch`."""
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(self.sampler)
        if not self.bucket:
            yield from chunked(indices, self.batch_size)
            return
        batches = []
        for pool in chunked(indices, self.batch_size * self.pool_batches):
            pool.sort(key=self.lengths.__getitem__)
            batches.extend(chunked(pool, self.batch_size))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        yield from batches


def make_loader(
    dataset: TextDataset,
    batch_size: int,
    *,
    shuffle: bool,
    bucket: bool,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader of padded `Batch`es over this rank's share of `dataset`.

    Shuffled order depends only on (seed, epoch): call `loader.batch_sampler.set_epoch`.
    Unshuffled loaders shard without duplicates, for evaluation.
    """
    sampler: Sampler[int] | range = (
        DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        if shuffle
        else range(rank, len(dataset), world_size)
    )
    batch_sampler = BucketBatchSampler(
        sampler, dataset.lengths, batch_size, bucket=bucket, shuffle=shuffle, seed=seed
    )
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate,
        generator=torch.Generator(),  # creating an iterator never draws from the global RNG
    )


def padding_fraction(loader: DataLoader) -> float:
    """Share of padded positions over all positions in one pass of `loader`."""
    padded = total = 0
    for batch in loader:
        total += batch.ids.numel()
        padded += batch.ids.numel() - int(batch.lengths.sum())
    return padded / max(total, 1)
