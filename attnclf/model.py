"""RNN + attention text classifier, with an optional linear "wide" path over word n-grams.

The deep path is embedding -> packed RNN -> attention -> MLP. The wide path (Wide & Deep,
Cheng et al. 2016; the linear model of fastText) scores each text's words and hashed word
2..n-grams with one weight per class and adds those scores to the deep path's logits: a
linear bag of n-grams is what wins on few, short texts, the RNN adds what word order says.

Padding invariance (with `pack_sequences`, the default; `mask_padding` for the attention):
the RNN runs on packed sequences (so padding never enters its state, in either direction),
the attention softmax gives padding exactly zero weight, and the wide path counts only the
words and n-grams that lie inside each text's length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnclf.config import ModelConfig

RNN_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
UNK_ID = 1  # the tokenizer's <UNK>; word dropout swaps tokens for it

_HASH_PRIME = 2_147_483_647  # 2**31 - 1: keeps h * _HASH_MULT + id well inside int64
_HASH_MULT = 1_000_003


def hash_ngrams(ids: Tensor, n: int, buckets: int) -> Tensor:
    """Bucket ids [B, L - n + 1] of every window of `n` consecutive token ids in `ids` [B, L]."""
    windows = ids.long().unfold(1, n, 1)  # [B, L - n + 1, n]
    h = torch.full_like(windows[..., 0], n)  # seed with n so orders hash apart
    for k in range(n):  # loop over the n-gram order only, never over the batch
        h = (h * _HASH_MULT + windows[..., k]) % _HASH_PRIME
    return h % buckets


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


class AttentionClassifier(nn.Module):
    """Embedding -> packed RNN -> (masked) attention -> MLP head, returning logits and weights."""

    def __init__(self, vocab_size: int, num_classes: int, cfg: ModelConfig) -> None:
        """Build the layers described by `cfg` for a vocabulary and label set of given sizes."""
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=0)
        with torch.no_grad():  # N(0, 1) scaled to N(0, std^2): no extra draws from the RNG
            self.embedding.weight.mul_(cfg.embedding_init_std)
        self.embedding_dropout = nn.Dropout(cfg.embedding_dropout)
        self.rnn = RNN_CELLS[cfg.cell](
            cfg.embedding_dim,
            cfg.rnn_hidden_dim,
            num_layers=cfg.num_layers,
            bidirectional=cfg.bidirectional,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        out_dim = cfg.rnn_hidden_dim * (2 if cfg.bidirectional else 1)
        if cfg.attention == "linear":
            self.attn_proj: nn.Module = nn.Identity()
            self.attn_score = nn.Linear(out_dim, 1)
        else:
            self.attn_proj = nn.Sequential(nn.Linear(out_dim, cfg.attention_dim), nn.Tanh())
            self.attn_score = nn.Linear(cfg.attention_dim, 1, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc1 = nn.Linear(out_dim, cfg.hidden_dim)
        self.fc2 = nn.Linear(cfg.hidden_dim, num_classes)
        self.wide = (
            nn.EmbeddingBag(vocab_size + cfg.wide_buckets, num_classes, mode="sum")
            if cfg.wide_ngrams > 0
            else None
        )
        if self.wide is not None:  # zeros: n-grams never seen in training add nothing
            nn.init.zeros_(self.wide.weight)

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Map token ids [B, L] and lengths [B] (any device) to logits [B, C] and weights [B, L]."""
        L = ids.shape[1]
        lengths = lengths.clamp(min=1)  # an all-padding row attends to position 0
        dev_lengths = lengths.to(ids.device, non_blocking=True)
        mask = torch.arange(L, device=ids.device)[None, :] < dev_lengths[:, None]  # [B, L]

        x = self.embedding_dropout(self.embedding(self._word_dropout(ids)))  # [B, L, E]
        # [B, L, H]; unpacked (the lesson's way), the RNN keeps running over the padding
        out = run_packed(self.rnn, x, lengths.cpu()) if self.cfg.pack_sequences else self.rnn(x)[0]

        scores = self.attn_score(self.attn_proj(out)).squeeze(-1).float()  # [B, L]
        if self.cfg.mask_padding:
            scores = scores.masked_fill(~mask, float("-inf"))
        attention = F.softmax(scores, dim=-1)
        context = torch.bmm(attention.unsqueeze(1).to(out.dtype), out).squeeze(1)  # [B, H]

        z = F.relu(self.fc1(self.dropout(context)))
        logits = self.fc2(self.dropout(z))
        if self.wide is not None:
            logits = logits + self._wide_logits(ids, mask)
        return logits, attention

    def _word_dropout(self, ids: Tensor) -> Tensor:
        """In training, each real token becomes <UNK> with probability `word_dropout`."""
        p = self.cfg.word_dropout
        if not self.training or p == 0:
            return ids
        drop = torch.rand(ids.shape, device=ids.device) < p
        return ids.masked_fill(drop & (ids > UNK_ID), UNK_ID)

    def _wide_logits(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Linear class scores [B, C] of each text's words and hashed 2..n-grams, L2-normalised."""
        assert self.wide is not None
        features, valid = [ids], [mask]
        for n in range(2, self.cfg.wide_ngrams + 1):
            if n > ids.shape[1]:
                break
            features.append(
                self.embedding.num_embeddings + hash_ngrams(ids, n, self.cfg.wide_buckets)
            )
            valid.append(mask[:, n - 1 :])  # n-gram i is valid iff i + n <= length
        weights = torch.cat(valid, dim=1).float()
        weights = weights / weights.sum(dim=1, keepdim=True).sqrt()  # unit-norm count vector
        return self.wide(torch.cat(features, dim=1), per_sample_weights=weights)
