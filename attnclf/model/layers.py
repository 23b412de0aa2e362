"""The model's parts: masks, the packed RNN, attention, the wide n-gram path and naive Bayes."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnclf.config import ModelConfig

_HASH_PRIME = 2_147_483_647  # 2**31 - 1: keeps h * _HASH_MULT + id well inside int64
_HASH_MULT = 1_000_003


def hash_ngrams(ids: Tensor, n: int, buckets: int) -> Tensor:
    """Bucket ids [B, L - n + 1] of every window of `n` consecutive token ids in `ids` [B, L]."""
    windows = ids.long().unfold(1, n, 1)  # [B, L - n + 1, n]
    h = torch.full_like(windows[..., 0], n)  # seed with n so orders hash apart
    for k in range(n):  # loop over the n-gram order only, never over the batch
        h = (h * _HASH_MULT + windows[..., k]) % _HASH_PRIME
    return h % buckets


def length_mask(lengths: Tensor, width: int, device: torch.device) -> Tensor:
    """Boolean mask [B, width] on `device`: True at the positions inside each of `lengths` [B]."""
    lengths = lengths.to(device, non_blocking=True)
    return torch.arange(width, device=device)[None, :] < lengths[:, None]


def run_packed(rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> Tensor:
    """Run `rnn` over rows [B, L, E] of CPU `lengths` [B] (any order) -> outputs [B, L, H].

    Rows keep their order, and outputs are zero past each length. The sort is done here
    because `enforce_sorted=False` packing copies the order to the GPU and back with
    blocking copies: a host-device sync on every batch.
    """
    lengths, order = torch.sort(lengths, descending=True)
    restore = torch.argsort(order)
    order, restore = (t.to(x.device, non_blocking=True) for t in (order, restore))
    packed = pack_padded_sequence(x.index_select(0, order), lengths, batch_first=True)
    out, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=x.shape[1])
    return out.index_select(0, restore)


def rnn_flops_per_token(cfg: ModelConfig) -> float:
    """Forward matmul FLOPs per token of the RNN stack (2 per multiply-add)."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cfg.cell]
    directions = 2 if cfg.bidirectional else 1
    total, width = 0.0, cfg.embedding_dim
    for _ in range(cfg.num_layers):
        total += directions * 2 * gates * cfg.rnn_hidden_dim * (width + cfg.rnn_hidden_dim)
        width = directions * cfg.rnn_hidden_dim
    return total


class Attention(nn.Module, ABC):
    """Scores each RNN output, then softmax over the positions (padding masked out if asked)."""

    @abstractmethod
    def scores(self, out: Tensor) -> Tensor:
        """One score [B, L] per position of the RNN outputs [B, L, H]."""

    @abstractmethod
    def flops_per_token(self) -> float:
        """Forward matmul FLOPs of scoring one position."""

    def forward(self, out: Tensor, mask: Tensor | None) -> Tensor:
        """Weights [B, L] that sum to 1 per row; exactly 0 where `mask` [B, L] is False."""
        scores = self.scores(out).float()
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return F.softmax(scores, dim=-1)


class LinearAttention(Attention):
    """`softmax(w . h + b)`: the lesson's attention."""

    def __init__(self, dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def scores(self, out: Tensor) -> Tensor:
        """`w . h + b` per position."""
        return self.score(out).squeeze(-1)

    def flops_per_token(self) -> float:
        """One dot product per position."""
        return 2.0 * self.score.in_features


class AdditiveAttention(Attention):
    """`softmax(u . tanh(W h + b))` (Bahdanau et al. 2015)."""

    def __init__(self, dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, cfg.attention_dim)
        self.score = nn.Linear(cfg.attention_dim, 1, bias=False)

    def scores(self, out: Tensor) -> Tensor:
        """`u . tanh(W h + b)` per position."""
        return self.score(torch.tanh(self.proj(out))).squeeze(-1)

    def flops_per_token(self) -> float:
        """The projection and the dot product with `u`."""
        return 2.0 * self.proj.in_features * self.proj.out_features + 2.0 * self.proj.out_features


ATTENTIONS: dict[str, type[Attention]] = {"linear": LinearAttention, "additive": AdditiveAttention}


def ngram_features(
    ids: Tensor, mask: Tensor, order: int, vocab_size: int, buckets: int
) -> tuple[Tensor, Tensor]:
    """Rows [B, F] of each text's words and hashed 2..n-grams; counts [B, F], 0 for padding.

    Word ids keep their row; n-gram buckets come after the vocabulary. Columns are grouped by
    order (words, then bigrams, ...), so `up_to` can cut a bag to a lower order.
    """
    features, valid = [ids], [mask]
    for n in range(2, order + 1):
        if n > ids.shape[1]:
            break
        features.append(vocab_size + hash_ngrams(ids, n, buckets))
        valid.append(mask[:, n - 1 :])  # n-gram i is valid iff i + n <= length
    return torch.cat(features, dim=1), torch.cat(valid, dim=1).float()


def up_to(features: Tensor, counts: Tensor, length: int, order: int) -> tuple[Tensor, Tensor]:
    """The columns of a bag from `ngram_features` that hold the words and 2..`order`-grams."""
    width = sum(max(length - n + 1, 0) for n in range(1, order + 1))
    return features[:, :width], counts[:, :width]


class WideNgrams(nn.Module):
    """The wide path: one weight per class for each word and hashed n-gram, summed per text.

    Counts are L2-normalised. Rows start at zero: an n-gram never seen in training adds nothing.
    """

    def __init__(self, rows: int, num_classes: int, order: int) -> None:
        super().__init__()
        self.order = order
        self.table = nn.EmbeddingBag(rows, num_classes, mode="sum")
        nn.init.zeros_(self.table.weight)

    def forward(self, features: Tensor, counts: Tensor) -> Tensor:
        """Class scores [B, C] of bags from `ngram_features`."""
        weights = counts / counts.sum(dim=1, keepdim=True).sqrt()
        return self.table(features, per_sample_weights=weights)

    def flops_per_token(self) -> float:
        """About one word and one n-gram of each order per token, a multiply-add per class."""
        return 2.0 * self.table.embedding_dim * self.order


class NaiveBayes(nn.Module):
    """A multinomial naive Bayes over words and hashed n-grams, fitted in closed form.

    Like scikit-learn's MultinomialNB: P(n-gram | class) is Laplace/Lidstone-smoothed (`alpha`)
    over the n-grams seen in training; unseen ones add nothing. Its tables are buffers, saved
    with the weights and never trained by gradient.
    """

    def __init__(self, rows: int, num_classes: int, order: int, alpha: float, weight: float):
        super().__init__()
        self.order, self.alpha, self.weight = order, alpha, weight
        self.register_buffer("log_probs", torch.zeros(rows, num_classes))
        self.register_buffer("log_prior", torch.zeros(num_classes))

    @torch.no_grad()
    def fit(self, bags: Iterable[tuple[Tensor, Tensor, Tensor]]) -> None:
        """Count n-grams per class over chunks of (features, counts, labels) from training texts."""
        C = self.log_prior.numel()
        counts = torch.zeros_like(self.log_probs)  # float32 counts are exact below 2**24
        per_class = torch.zeros(C, device=counts.device)
        for features, valid, labels in bags:
            labels = labels.to(features.device)
            classes = labels[:, None].expand_as(features)
            cells = (features * C + classes)[valid.bool()]
            counts.view(-1).index_add_(0, cells, torch.ones_like(cells, dtype=counts.dtype))
            per_class += torch.bincount(labels, minlength=C).to(per_class.device)
        seen = counts.sum(dim=1) > 0
        log_probs = torch.log((counts + self.alpha) / (counts.sum(dim=0) + self.alpha * seen.sum()))
        self.log_probs.copy_(log_probs.masked_fill(~seen[:, None], 0.0))
        self.log_prior.copy_(torch.log(per_class / per_class.sum()))

    def forward(self, features: Tensor, counts: Tensor) -> Tensor:
        """Joint log-likelihoods [B, C]: log P(class) + sum of log P(n-gram | class)."""
        bag = F.embedding_bag(features, self.log_probs, per_sample_weights=counts, mode="sum")
        return bag + self.log_prior

    def mix(self, logits: Tensor, nb: Tensor) -> Tensor:
        """log((1 - w) * softmax(logits) + w * softmax(nb)), w = `weight` (no device sync)."""
        w = self.weight
        nb = F.log_softmax(nb, dim=-1)
        if w == 1:
            return nb
        return torch.logaddexp(
            F.log_softmax(logits.float(), dim=-1) + math.log1p(-w), nb + math.log(w)
        )
