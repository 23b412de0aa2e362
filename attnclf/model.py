"""RNN + attention text classifier, with optional n-gram paths: a linear "wide" one, naive Bayes.

The deep path is embedding -> packed RNN -> attention -> MLP. The wide path (Wide & Deep,
Cheng et al. 2016; the linear model of fastText) scores each text's words and hashed word
2..n-grams with one weight per class and adds those scores to the deep path's logits: a
linear bag of n-grams is what wins on few, short texts, the RNN adds what word order says.

The naive Bayes path (`naive_bayes` > 0) is a multinomial naive Bayes over the words and
hashed 2..n-grams (`naive_bayes_ngrams`), fitted in closed form on the training split
(`fit_naive_bayes`) and stored as buffers.
Outside training, the model's probabilities are a mixture of the network's and naive Bayes'
(an ensemble of a generative and a discriminative model, as in Mesnil et al. 2014); the
network trains alone, so it never leans on naive Bayes.

Padding invariance (with `pack_sequences`, the default; `mask_padding` for the attention):
the RNN runs on packed sequences (so padding never enters its state, in either direction),
the attention softmax gives padding exactly zero weight, and the wide and naive Bayes paths
count only the words and n-grams that lie inside each text's length.
"""

from __future__ import annotations

import math

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
        if cfg.naive_bayes > 0:  # uniform until fit_naive_bayes; saved with the weights
            rows = vocab_size + cfg.wide_buckets
            self.register_buffer("nb_log_probs", torch.zeros(rows, num_classes))
            self.register_buffer("nb_log_prior", torch.zeros(num_classes))

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Map token ids [B, L] and lengths [B] (any device) to logits [B, C] and weights [B, L].

        With the naive Bayes path, outside training, the logits are the mixture's log-probabilities.
        """
        cfg, L = self.cfg, ids.shape[1]
        lengths = lengths.clamp(min=1)  # an all-padding row attends to position 0
        mask = length_mask(lengths, L, ids.device)  # [B, L]

        x = self.embedding_dropout(self.embedding(self._word_dropout(ids)))  # [B, L, E]
        # [B, L, H]; unpacked (the lesson's way), the RNN keeps running over the padding
        out = run_packed(self.rnn, x, lengths.cpu()) if cfg.pack_sequences else self.rnn(x)[0]

        scores = self.attn_score(self.attn_proj(out)).squeeze(-1).float()  # [B, L]
        if cfg.mask_padding:
            scores = scores.masked_fill(~mask, float("-inf"))
        attention = F.softmax(scores, dim=-1)
        context = torch.bmm(attention.unsqueeze(1).to(out.dtype), out).squeeze(1)  # [B, H]

        z = F.relu(self.fc1(self.dropout(context)))
        logits = self.fc2(self.dropout(z))
        wide_order = cfg.wide_ngrams if self.wide is not None else 0
        nb_order = cfg.naive_bayes_ngrams if cfg.naive_bayes > 0 and not self.training else 0
        if wide_order or nb_order:  # one bag of n-grams serves both paths
            features, counts = self._ngram_features(ids, mask, max(wide_order, nb_order))
            if wide_order:
                logits = logits + self._wide_logits(*_up_to(features, counts, L, wide_order))
            if nb_order:
                nb = self._naive_bayes_logits(*_up_to(features, counts, L, nb_order))
                logits = self._mix_naive_bayes(logits, nb)
        return logits, attention

    def _word_dropout(self, ids: Tensor) -> Tensor:
        """In training, each real token becomes <UNK> with probability `word_dropout`."""
        p = self.cfg.word_dropout
        if not self.training or p == 0:
            return ids
        drop = torch.rand(ids.shape, device=ids.device) < p
        return ids.masked_fill(drop & (ids > UNK_ID), UNK_ID)

    def _ngram_features(self, ids: Tensor, mask: Tensor, order: int) -> tuple[Tensor, Tensor]:
        """Rows [B, F] of each text's words and hashed 2..n-grams; counts [B, F], 0 for padding."""
        features, valid = [ids], [mask]
        for n in range(2, order + 1):
            if n > ids.shape[1]:
                break
            features.append(
                self.embedding.num_embeddings + hash_ngrams(ids, n, self.cfg.wide_buckets)
            )
            valid.append(mask[:, n - 1 :])  # n-gram i is valid iff i + n <= length
        return torch.cat(features, dim=1), torch.cat(valid, dim=1).float()

    def _wide_logits(self, features: Tensor, counts: Tensor) -> Tensor:
        """The wide path's class scores [B, C]: its rows summed with the counts L2-normalised."""
        assert self.wide is not None
        weights = counts / counts.sum(dim=1, keepdim=True).sqrt()
        return self.wide(features, per_sample_weights=weights)

    def _naive_bayes_logits(self, features: Tensor, counts: Tensor) -> Tensor:
        """Naive Bayes' joint log-likelihoods [B, C]: log P(class) + sum of log P(n-gram|class)."""
        bag = F.embedding_bag(features, self.nb_log_probs, per_sample_weights=counts, mode="sum")
        return bag + self.nb_log_prior

    def _mix_naive_bayes(self, logits: Tensor, nb: Tensor) -> Tensor:
        """log((1 - w) * softmax(logits) + w * softmax(nb)), w = `naive_bayes` (no device sync)."""
        w = self.cfg.naive_bayes
        nb = F.log_softmax(nb, dim=-1)
        if w == 1:
            return nb
        return torch.logaddexp(
            F.log_softmax(logits.float(), dim=-1) + math.log1p(-w), nb + math.log(w)
        )

    @torch.no_grad()
    def fit_naive_bayes(self, ids: Tensor, lengths: Tensor, labels: Tensor) -> None:
        """Fit the naive Bayes path on training texts: ids [N, L], lengths [N], labels [N].

        Like scikit-learn's MultinomialNB: P(n-gram | class) is Laplace/Lidstone-smoothed
        (`naive_bayes_alpha`) over the n-grams seen in training; unseen ones add nothing.
        """
        C = self.nb_log_prior.numel()
        counts = torch.zeros_like(self.nb_log_probs)  # float32 counts are exact below 2**24
        for start in range(0, len(ids), 4096):  # chunks bound the n-gram tensors' memory
            chunk = ids[start : start + 4096]
            mask = length_mask(lengths[start : start + 4096], chunk.shape[1], chunk.device)
            features, valid = self._ngram_features(chunk, mask, self.cfg.naive_bayes_ngrams)
            classes = labels[start : start + 4096, None].to(chunk.device).expand_as(features)
            cells = (features * C + classes)[valid.bool()]
            counts.view(-1).index_add_(0, cells, torch.ones_like(cells, dtype=counts.dtype))
        seen = counts.sum(dim=1) > 0
        alpha = self.cfg.naive_bayes_alpha
        log_probs = torch.log((counts + alpha) / (counts.sum(dim=0) + alpha * seen.sum()))
        self.nb_log_probs.copy_(log_probs.masked_fill(~seen[:, None], 0.0))
        per_class = torch.bincount(labels.to(counts.device), minlength=C).float()
        self.nb_log_prior.copy_(torch.log(per_class / per_class.sum()))


def _up_to(features: Tensor, counts: Tensor, length: int, order: int) -> tuple[Tensor, Tensor]:
    """The columns of a bag from `_ngram_features` that hold the words and 2..`order`-grams."""
    width = sum(max(length - n + 1, 0) for n in range(1, order + 1))
    return features[:, :width], counts[:, :width]
