"""The device path: sync-free packing, device-resident datasets, and a training epoch on CUDA
that never waits for the GPU (checked with torch's sync debug mode)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnclf.config import ModelConfig, TrainConfig
from attnclf.encoding.batching import TextDataset, make_loader
from attnclf.model.classifier import AttentionClassifier
from attnclf.model.layers import run_packed
from attnclf.training.loop import Trainer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_run_packed_matches_torch_unsorted_packing() -> None:
    torch.manual_seed(0)
    rnn = torch.nn.GRU(5, 7, batch_first=True, bidirectional=True)
    x, lengths = torch.randn(6, 4, 5), torch.tensor([2, 4, 1, 3, 4, 2])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected = pad_packed_sequence(rnn(packed)[0], batch_first=True)[0]
    assert torch.equal(run_packed(rnn, x, lengths), expected)


def random_dataset(n: int = 256, vocab: int = 50, seed: int = 0) -> TextDataset:
    """`n` random sequences of 1..12 tokens with 2 classes."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 13, (n,), generator=g).tolist()
    sequences = [torch.randint(2, vocab, (k,), generator=g).tolist() for k in lengths]
    return TextDataset(sequences, torch.randint(0, 2, (n,), generator=g).tolist(), 16)


def test_dataset_to_keeps_lengths_on_the_cpu() -> None:
    ds = random_dataset()
    assert ds.to(torch.device("cpu")) is ds
    batch = ds.__getitems__([3, 1, 2])
    assert batch.lengths.device.type == "cpu"
    assert batch.ids.shape == (3, int(batch.lengths.max()))


@pytest.mark.gpu
@cuda
def test_device_resident_batches_need_no_copies() -> None:
    device = torch.device("cuda")
    cpu = random_dataset()
    ds = random_dataset().to(device)
    batch = ds.__getitems__([5, 0, 9])
    assert batch.ids.device.type == batch.labels.device.type == "cuda"
    assert batch.lengths.device.type == "cpu"  # pack_padded_sequence wants CPU lengths
    expected = cpu.__getitems__([5, 0, 9])
    assert torch.equal(batch.ids.cpu(), expected.ids)
    assert torch.equal(batch.labels.cpu(), expected.labels)


def count_syncs(fn: Callable[[], object]) -> int:
    """How many times `fn` made the host wait for the GPU (torch's sync debug mode, warn)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.gpu
@cuda
def test_training_and_evaluation_do_not_synchronise_per_batch() -> None:
    torch.manual_seed(0)
    device = torch.device("cuda")
    train_ds, val_ds = (
        random_dataset(512, seed=1).to(device),
        random_dataset(512, seed=2).to(device),
    )
    model = AttentionClassifier(50, 2, ModelConfig(embedding_dim=16, rnn_hidden_dim=16))
    trainer = Trainer(model, TrainConfig(batch_size=32), device)
    train_loader = make_loader(train_ds, 32, shuffle=True, bucket=True)  # 16 steps
    val_loader = make_loader(val_ds, 32, shuffle=False, bucket=True)  # 16 batches
    trainer.train_epoch(train_loader)  # warm-up: cuDNN plans, allocator pools
    # Only the end-of-epoch read-backs may wait for the GPU, never one per batch.
    assert count_syncs(lambda: trainer.train_epoch(train_loader)) <= 2
    assert count_syncs(lambda: trainer.evaluate(val_loader)) <= 3
