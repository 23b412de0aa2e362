"""The classifier: an RNN + attention network, a wide n-gram path, and a naive Bayes mix.

The deep path is embedding -> packed RNN -> attention -> MLP. The wide path (Wide & Deep,
Cheng et al. 2016; the linear model of fastText) scores each text's words and hashed word
2..n-grams and adds those scores to the deep path's logits: a linear bag of n-grams is what
wins on few, short texts, the RNN adds what word order says. Together they are the network,
trained by gradient.

The naive Bayes path (`naive_bayes` > 0) is fitted in closed form on the training split
(`fit_naive_bayes`). The model's probabilities (`log_probs`) mix the network's with naive
Bayes' (an ensemble of a generative and a discriminative model, as in Mesnil et al. 2014);
`forward` returns the network alone, which is what trains, so it never leans on naive Bayes.

Padding invariance (with `pack_sequences`, the default; `mask_padding` for the attention):
the RNN runs on packed sequences (so padding never enters its state, in either direction),
the attention softmax gives padding exactly zero weight, and the wide and naive Bayes paths
count only the words and n-grams that lie inside each text's length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnclf.config import ModelConfig
from attnclf.encoding.tokenizer import UNK_ID
from attnclf.model.layers import (
    ATTENTIONS,
    NaiveBayes,
    WideNgrams,
    length_mask,
    ngram_features,
    rnn_flops_per_token,
    run_packed,
    up_to,
)

AUTO_NAIVE_BAYES = 0.4  # the naive Bayes weight while training when `naive_bayes: auto`
RNN_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class AttentionClassifier(nn.Module):
    """Embedding -> packed RNN -> (masked) attention -> MLP head, plus the n-gram paths."""

    def __init__(self, vocab_size: int, num_classes: int, cfg: ModelConfig) -> None:
        """Build the layers described by `cfg` for a vocabulary and label set of given sizes."""
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=0)
        with torch.no_grad():  # N(0, 1) scaled to N(0, std^2): no extra draws from the RNG
            self.embedding.weight.mul_(cfg.embedding_init_std)
        self.embedding.weight.requires_grad_(not cfg.freeze_embeddings)
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
        self.attention = ATTENTIONS[cfg.attention](out_dim, cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc1 = nn.Linear(out_dim, cfg.hidden_dim)
        self.fc2 = nn.Linear(cfg.hidden_dim, num_classes)
        rows = vocab_size + cfg.wide_buckets  # words, then n-gram buckets
        nb_weight = AUTO_NAIVE_BAYES if cfg.naive_bayes == "auto" else cfg.naive_bayes
        self.wide = WideNgrams(rows, num_classes, cfg.wide_ngrams) if cfg.wide_ngrams else None
        self.naive_bayes = (
            NaiveBayes(rows, num_classes, cfg.naive_bayes_ngrams, cfg.naive_bayes_alpha, nb_weight)
            if nb_weight > 0
            else None
        )
        self.temperature = 1.0 if cfg.temperature == "auto" else cfg.temperature
        if not cfg.deep:  # its layers stay (saved weights keep their layout), never run
            wide = {id(p) for p in self.wide.parameters()}
            for p in self.parameters():
                p.requires_grad_(id(p) in wide)

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The network's logits [B, C] and attention [B, L] for ids [B, L], lengths [B].

        This is what trains: the deep and wide paths, never naive Bayes (see `log_probs`).
        """
        return self._outputs(ids, lengths, with_naive_bayes=False)

    def log_probs(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The whole model's class scores [B, C] (softmax gives its probabilities), attention.

        With naive Bayes they are the mixture's log-probabilities; without, the network's
        logits (log-probabilities up to a constant per row); either divided by `temperature`.
        """
        scores, attention = self._outputs(ids, lengths, self.naive_bayes is not None)
        return (scores if self.temperature == 1 else scores / self.temperature), attention

    def probabilities(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The whole model's class probabilities [B, C] and the attention [B, L]."""
        scores, attention = self.log_probs(ids, lengths)
        return torch.softmax(scores.float(), dim=-1), attention

    def _outputs(
        self, ids: Tensor, lengths: Tensor, with_naive_bayes: bool
    ) -> tuple[Tensor, Tensor]:
        """Deep path, plus the wide path, plus (if asked) the naive Bayes mix."""
        cfg, L = self.cfg, ids.shape[1]
        lengths = lengths.clamp(min=1)  # an all-padding row attends to position 0
        mask = length_mask(lengths, L, ids.device)  # [B, L]

        if cfg.deep:
            logits, attention = self._deep(ids, lengths, mask)
        else:
            attention = mask.float() / lengths.to(ids.device)[:, None]
            logits = torch.zeros(ids.shape[0], self.fc2.out_features, device=ids.device)

        wide_order = self.wide.order if self.wide is not None else 0
        nb_order = self.naive_bayes.order if with_naive_bayes and self.naive_bayes else 0
        if wide_order or nb_order:  # one bag of n-grams serves both paths
            features, counts = self._ngrams(ids, mask, max(wide_order, nb_order))
            if self.wide is not None:
                logits = logits + self.wide(*up_to(features, counts, L, wide_order))
            if nb_order:
                nb = self.naive_bayes(*up_to(features, counts, L, nb_order))
                logits = self.naive_bayes.mix(logits, nb)
        return logits, attention

    def _deep(self, ids: Tensor, lengths: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The deep path: embedding -> RNN -> attention -> head; logits [B, C], attention."""
        cfg = self.cfg
        x = self.embedding_dropout(self.embedding(self._word_dropout(ids)))  # [B, L, E]
        # [B, L, H]; unpacked (the lesson's way), the RNN keeps running over the padding
        out = run_packed(self.rnn, x, lengths.cpu()) if cfg.pack_sequences else self.rnn(x)[0]
        attention = self.attention(out, mask if cfg.mask_padding else None)
        context = torch.bmm(attention.unsqueeze(1).to(out.dtype), out).squeeze(1)  # [B, H]
        z = F.relu(self.fc1(self.dropout(context)))
        return self.fc2(self.dropout(z)), attention

    @torch.no_grad()
    def parts(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """The network's and naive Bayes' log-probabilities [B, C] (None without naive Bayes),
        unmixed and at temperature 1: what calibration weighs."""
        network = F.log_softmax(self.forward(ids, lengths)[0].float(), dim=-1)
        if self.naive_bayes is None:
            return network, None
        L = ids.shape[1]
        mask = length_mask(lengths.clamp(min=1), L, ids.device)
        features, counts = self._ngrams(ids, mask, self.naive_bayes.order)
        nb = self.naive_bayes(*up_to(features, counts, L, self.naive_bayes.order))
        return network, F.log_softmax(nb.float(), dim=-1)

    @torch.no_grad()
    def load_embeddings(self, vectors: Tensor, found: Tensor) -> None:
        """Start the embeddings of the rows marked in `found` [V] from `vectors` [V, E]."""
        weight = self.embedding.weight
        found = found.to(weight.device)
        weight[found] = vectors.to(weight.device, weight.dtype)[found]

    def _word_dropout(self, ids: Tensor) -> Tensor:
        """In training, each real token becomes <UNK> with probability `word_dropout`."""
        p = self.cfg.word_dropout
        if not self.training or p == 0:
            return ids
        drop = torch.rand(ids.shape, device=ids.device) < p
        return ids.masked_fill(drop & (ids > UNK_ID), UNK_ID)

    def _ngrams(self, ids: Tensor, mask: Tensor, order: int) -> tuple[Tensor, Tensor]:
        """This model's bag of words and hashed n-grams up to `order` (see `ngram_features`)."""
        return ngram_features(
            ids, mask, order, self.embedding.num_embeddings, self.cfg.wide_buckets
        )

    @torch.no_grad()
    def fit_naive_bayes(self, ids: Tensor, lengths: Tensor, labels: Tensor) -> None:
        """Fit the naive Bayes path on training texts: ids [N, L], lengths [N], labels [N]."""
        assert self.naive_bayes is not None, "the model has no naive Bayes path"
        order, chunk = self.naive_bayes.order, 4096  # chunks bound the n-gram tensors' memory

        def bags():
            for start in range(0, len(ids), chunk):
                rows = ids[start : start + chunk]
                mask = length_mask(lengths[start : start + chunk], rows.shape[1], rows.device)
                yield (*self._ngrams(rows, mask, order), labels[start : start + chunk])

        self.naive_bayes.fit(bags())

    def parameter_groups(self, wide_lr: float) -> list[dict]:
        """Optimiser groups: the deep path at the optimiser's lr, the wide path at `wide_lr`."""
        wide = list(self.wide.parameters()) if self.wide is not None else []
        deep = [p for p in self.parameters() if all(p is not w for w in wide)]
        return [{"params": deep}] + ([{"params": wide, "lr": wide_lr}] if wide else [])

    def forward_flops(self, tokens: float) -> float:
        """Forward matmul FLOPs for one text of `tokens` tokens: RNN, attention, pooling, heads."""
        out = self.fc1.in_features
        per_token = rnn_flops_per_token(self.cfg) + self.attention.flops_per_token() + 2 * out
        if self.wide is not None:
            per_token += self.wide.flops_per_token()
        head = 2 * out * self.fc1.out_features + 2 * self.fc2.in_features * self.fc2.out_features
        return tokens * per_token + head

    @staticmethod
    def sizes(state: dict[str, Tensor]) -> tuple[int, int] | None:
        """(vocabulary size, number of classes) of saved weights; None if not this model's."""
        emb, out = state.get("embedding.weight"), state.get("fc2.weight")
        return None if emb is None or out is None else (emb.shape[0], out.shape[0])

    @staticmethod
    def upgrade_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights saved by attnclf 0.1.0 (one flat module) under this model's names."""
        renames = {
            "attn_proj.0.": "attention.proj.",
            "attn_score.": "attention.score.",
            "wide.weight": "wide.table.weight",
            "nb_log_probs": "naive_bayes.log_probs",
            "nb_log_prior": "naive_bayes.log_prior",
        }

        def rename(key: str) -> str:
            old = next((o for o in renames if key.startswith(o)), None)
            return key if old is None else renames[old] + key[len(old) :]

        return {rename(k): v for k, v in state.items()}
