"""Influence: each token's signed effect on the whole model's prediction, by deleting it.

The influence of a token is p(predicted class | text) - p(predicted class | text without that
token), where "without" removes the token from the sequence (the text gets one token shorter)
and the probabilities are the whole model's: the RNN + attention path, the wide n-gram path and
the naive Bayes mix together. Positive values push toward the predicted class, negative ones
away from it. Deleting the only token of a one-token text leaves an empty text, which the model
scores like any empty row (a lone padding position).

All of a batch's deletions run in one forward pass with the texts themselves (chunked by
`MAX_ROWS` for long batches), so explaining a title of n tokens costs about n + 1 predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnclf.model.classifier import AttentionClassifier
from attnclf.model.layers import length_mask

MAX_ROWS = 8192  # texts + deletions per forward pass: bounds memory on long texts


@dataclass
class Explanation:
    """A batch's probabilities [B, C], RNN attention [B, L] and influence [B, L] (0 on padding)."""

    probs: Tensor
    attention: Tensor
    influence: Tensor


def compact(ids: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of `ids` [B, L] with only the positions where `keep` [B, L] is True, in order.

    Returns the compacted ids [B, L] (padded with 0) and their lengths [B] on the CPU.
    """
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    lengths = keep.sum(dim=1)
    kept = length_mask(lengths, ids.shape[1], ids.device)
    return ids.gather(1, order).masked_fill(~kept, 0), lengths.cpu()


def deletions(ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Every one-token deletion of every text: ids [sum(lengths), L] and their lengths.

    Row order is text by text, and within a text position by position.
    """
    lengths = lengths.cpu()
    rows = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    position = torch.arange(len(rows)) - starts[rows]
    width = ids.shape[1]
    inside = torch.arange(width)[None, :] < lengths[rows, None]
    keep = inside & (torch.arange(width)[None, :] != position[:, None])
    return compact(ids[rows.to(ids.device)], keep.to(ids.device))


@torch.inference_mode()
def explain_batch(model: AttentionClassifier, ids: Tensor, lengths: Tensor) -> Explanation:
    """Probabilities, attention and per-token influence of an encoded batch (ids [B, L])."""
    lengths = lengths.cpu()
    probs, attention, influence = [], [], []
    for start, stop in _chunks(lengths):
        p, a, i = _explain_chunk(model, ids[start:stop], lengths[start:stop])
        probs.append(p)
        attention.append(a)
        influence.append(i)
    return Explanation(torch.cat(probs), torch.cat(attention), torch.cat(influence))


def _chunks(lengths: Tensor) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges of texts whose rows (text + deletions) fit `MAX_ROWS`."""
    ranges, start, rows = [], 0, 0
    for i, n in enumerate(lengths.tolist()):
        if rows and rows + n + 1 > MAX_ROWS:
            ranges.append((start, i))
            start, rows = i, 0
        rows += n + 1
    if rows:
        ranges.append((start, len(lengths)))
    return ranges


def _explain_chunk(
    model: AttentionClassifier, ids: Tensor, lengths: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """`explain_batch` for a batch that fits in one forward pass."""
    B, L = ids.shape
    deleted, deleted_lengths = deletions(ids, lengths)
    probs, attention = model.probabilities(
        torch.cat([ids, deleted]), torch.cat([lengths, deleted_lengths])
    )
    full, without = probs[:B], probs[B:]
    predicted = full.argmax(dim=1)
    rows = torch.repeat_interleave(torch.arange(B), lengths).to(probs.device)
    drop = full[rows, predicted[rows]] - without[torch.arange(len(rows)), predicted[rows]]
    influence = torch.zeros(B, L, device=probs.device)
    influence[length_mask(lengths, L, probs.device)] = drop
    return full, attention[:B], influence
