"""Per-batch padding, and bucketed / shuffled / sharded batch sampling that loses no sample."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from torch.utils.data import DistributedSampler

from attnclf.encoding.batching import (
    Batch,
    BucketBatchSampler,
    TextDataset,
    make_loader,
    padding_fraction,
)


def indexed_dataset(n: int, max_len: int = 64, seed: int = 0) -> TextDataset:
    """Random-length sequences whose labels are their own row indices."""
    rng = random.Random(seed)
    sequences = [[rng.randint(2, 99) for _ in range(rng.randint(1, 60))] for _ in range(n)]
    return TextDataset(sequences, list(range(n)), max_len)


def epoch_indices(loader) -> list[int]:
    return [i for batch in loader for i in batch.labels.tolist()]


def epoch_batches(loader) -> list[list[int]]:
    return [batch.labels.tolist() for batch in loader]


def test_truncation_to_max_len() -> None:
    ds = TextDataset([list(range(2, 12)), [3, 4]], [0, 1], max_len=4)
    assert ds.lengths.tolist() == [4, 2]
    assert ds.ids.tolist() == [[2, 3, 4, 5], [3, 4, 0, 0]]
    ids, label = ds[0]
    assert ids.tolist() == [2, 3, 4, 5] and int(label) == 0


def test_getitems_pads_to_the_batch_longest() -> None:
    ds = TextDataset([[5, 6, 7, 8, 9, 10], [2, 3], [4, 5, 6]], [2, 0, 1], max_len=50)
    batch = ds.__getitems__([1, 2])
    assert isinstance(batch, Batch)
    assert batch.ids.shape == (2, 3)
    assert batch.ids.tolist() == [[2, 3, 0], [4, 5, 6]]
    assert batch.lengths.tolist() == [2, 3]
    assert batch.labels.tolist() == [0, 1]
    assert batch.ids.dtype == batch.lengths.dtype == batch.labels.dtype == torch.long
    full = ds.__getitems__([2, 0])
    assert full.ids.shape == (2, 6)
    assert full.ids.tolist() == [[4, 5, 6, 0, 0, 0], [5, 6, 7, 8, 9, 10]]


def test_pad_to_sets_a_minimum_width() -> None:
    ds = TextDataset([[5, 6, 7, 8, 9, 10], [2, 3], [4, 5, 6]], [2, 0, 1], max_len=50, pad_to=4)
    assert ds.__getitems__([1, 2]).ids.tolist() == [[2, 3, 0, 0], [4, 5, 6, 0]]
    assert ds.__getitems__([2, 0]).ids.shape == (2, 6)  # a longer text still widens its batch
    single = TextDataset([[7]], [0], max_len=8, pad_to=3)
    assert single.__getitems__([0]).ids.tolist() == [[7, 0, 0]]


def test_padding_positions_are_zero() -> None:
    ds = indexed_dataset(50)
    batch = ds.__getitems__(list(range(50)))
    positions = torch.arange(batch.ids.shape[1])
    pad = positions[None, :] >= batch.lengths[:, None]
    assert (batch.ids[pad] == 0).all()
    assert (batch.ids[~pad] >= 2).all()
    assert batch.ids.shape[1] == int(batch.lengths.max())


def test_zero_length_sequences() -> None:
    ds = TextDataset([[], [7], []], [0, 1, 0], max_len=8)
    assert ds.lengths.tolist() == [0, 1, 0]
    only_empty = ds.__getitems__([0, 2])
    assert only_empty.ids.shape == (2, 1)
    assert only_empty.ids.tolist() == [[0], [0]]
    assert only_empty.lengths.tolist() == [0, 0]
    mixed = ds.__getitems__([0, 1])
    assert mixed.ids.tolist() == [[0], [7]]


def test_all_empty_dataset() -> None:
    ds = TextDataset([[], []], [1, 0], max_len=8)
    assert ds.ids.shape == (2, 1)
    assert ds[0][0].numel() == 0


def test_length_mismatch_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        TextDataset([[1], [2]], [0], max_len=4)


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize(("n", "batch_size"), [(1000, 32), (97, 10), (5, 8)])
def test_every_index_exactly_once(bucket: bool, shuffle: bool, n: int, batch_size: int) -> None:
    ds = indexed_dataset(n)
    loader = make_loader(ds, batch_size, shuffle=shuffle, bucket=bucket, seed=3)
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        batches = list(loader)
        assert all(isinstance(b, Batch) for b in batches)
        seen = [i for b in batches for i in b.labels.tolist()]
        assert sorted(seen) == list(range(n))
        assert len(batches) == len(loader) == -(-n // batch_size)
        assert all(len(b.labels) <= batch_size for b in batches)
        for b in batches:  # each row holds its own sample's ids, padded to the batch's longest
            assert b.ids.shape[1] == int(b.lengths.max())
            for row, index in enumerate(b.labels.tolist()):
                assert torch.equal(b.ids[row], ds.ids[index, : b.ids.shape[1]])
                assert int(b.lengths[row]) == int(ds.lengths[index])


def test_unshuffled_unbucketed_is_sequential() -> None:
    loader = make_loader(indexed_dataset(25), 10, shuffle=False, bucket=False)
    assert epoch_batches(loader) == [list(range(10)), list(range(10, 20)), list(range(20, 25))]


def test_shuffle_changes_order() -> None:
    loader = make_loader(indexed_dataset(200), 16, shuffle=True, bucket=False, seed=1)
    assert epoch_indices(loader) != list(range(200))


def test_bucketing_reduces_padding() -> None:
    ds = indexed_dataset(2000, seed=5)
    plain = padding_fraction(make_loader(ds, 32, shuffle=True, bucket=False, seed=0))
    bucketed = padding_fraction(make_loader(ds, 32, shuffle=True, bucket=True, seed=0))
    assert bucketed < plain / 3
    assert 0 <= bucketed < plain < 1


def test_bucketed_batches_hold_similar_lengths() -> None:
    ds = indexed_dataset(640, seed=2)
    loader = make_loader(ds, 32, shuffle=False, bucket=True)
    for batch in loader:
        assert int(batch.lengths.max() - batch.lengths.min()) <= 10


@pytest.mark.parametrize("bucket", [True, False])
def test_set_epoch_changes_order_and_is_reproducible(bucket: bool) -> None:
    ds = indexed_dataset(300)

    def order(epoch: int, seed: int = 11) -> list[list[int]]:
        loader = make_loader(ds, 16, shuffle=True, bucket=bucket, seed=seed)
        loader.batch_sampler.set_epoch(epoch)
        return epoch_batches(loader)

    assert order(0) != order(1)
    assert order(1) == order(1)
    assert order(1, seed=12) != order(1, seed=11)
    # an uninterrupted run's epoch 2 equals a fresh loader set to epoch 2 (resume)
    loader = make_loader(ds, 16, shuffle=True, bucket=bucket, seed=11)
    for epoch in range(3):
        loader.batch_sampler.set_epoch(epoch)
        last = epoch_batches(loader)
    assert last == order(2)


def test_iteration_does_not_touch_global_rng() -> None:
    loader = make_loader(indexed_dataset(100), 8, shuffle=True, bucket=True, seed=0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    epoch_indices(loader)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("n", [400, 401, 37])
@pytest.mark.parametrize("bucket", [True, False])
def test_distributed_sampler_ranks_cover_everything(n: int, bucket: bool) -> None:
    ds = indexed_dataset(n)
    per_rank = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=4)
        batch_sampler = BucketBatchSampler(sampler, ds.lengths, 16, bucket=bucket, seed=4)
        batch_sampler.set_epoch(1)
        batches = list(batch_sampler)
        assert len(batches) == len(batch_sampler)
        per_rank.append(batches)
    assert len(per_rank[0]) == len(per_rank[1])
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert set(seen) == set(range(n))
    assert len(seen) == 2 * -(-n // 2)  # DistributedSampler pads with at most one repeat


@pytest.mark.parametrize("shuffle", [True, False])
def test_make_loader_shards_across_ranks(shuffle: bool) -> None:
    n = 203
    ds = indexed_dataset(n)
    seen = Counter()
    for rank in range(2):
        loader = make_loader(ds, 16, shuffle=shuffle, bucket=True, seed=2, rank=rank, world_size=2)
        loader.batch_sampler.set_epoch(0)
        seen.update(epoch_indices(loader))
    assert set(seen) == set(range(n))
    if not shuffle:  # evaluation shards never duplicate a sample
        assert all(count == 1 for count in seen.values())
    else:
        assert sum(seen.values()) == 2 * -(-n // 2)


def test_padding_fraction_exact() -> None:
    ds = TextDataset([[2, 3, 4, 5], [2], [2, 3], [2, 3]], [0, 1, 2, 3], max_len=10)
    loader = make_loader(ds, 2, shuffle=False, bucket=False)
    # batches [4, 1] -> 8 positions, 3 padded; [2, 2] -> 4 positions, 0 padded
    assert padding_fraction(loader) == pytest.approx(3 / 12)


@pytest.mark.parametrize("pad_to", [None, 1, 40])
def test_prediction_batches_are_the_training_loaders_unshuffled_batches(pad_to) -> None:
    from attnclf.predict.base import BATCH_SIZE, length_batches

    rng = random.Random(pad_to)
    sequences = [[rng.randrange(2, 50) for _ in range(rng.randrange(1, 40))] for _ in range(1300)]
    loader = make_loader(
        TextDataset(sequences, list(range(len(sequences))), 30, pad_to),
        BATCH_SIZE,
        shuffle=False,
        bucket=True,
    )
    ours = list(length_batches(sequences, 30, pad_to or 1))
    assert len(ours) == len(loader) == 3
    for (rows, ids, lengths), batch in zip(ours, loader, strict=True):
        assert rows.tolist() == batch.labels.tolist()
        assert torch.equal(torch.from_numpy(ids), batch.ids)
        assert lengths.tolist() == batch.lengths.tolist()
