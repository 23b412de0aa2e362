"""Tests for the RNN + attention classifier: shapes, masking, padding invariance, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from attnclf.config import ModelConfig, from_dict
from attnclf.errors import UserError
from attnclf.model.classifier import AttentionClassifier
from attnclf.model.layers import hash_ngrams, rnn_flops_per_token

VOCAB, CLASSES = 50, 4


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Keep the shared CPU free and results deterministic."""
    torch.set_num_threads(1)
    torch.manual_seed(0)


def tiny(**overrides: object) -> ModelConfig:
    """A model config small enough to run in milliseconds."""
    base = dict(
        embedding_dim=8,
        rnn_hidden_dim=6,
        attention_dim=5,
        hidden_dim=7,
        dropout=0.2,
        embedding_dropout=0.1,
    )
    return ModelConfig(**{**base, **overrides})


def make_model(**overrides: object) -> AttentionClassifier:
    """A freshly seeded tiny model in eval mode (wide table randomised: it starts at zeros)."""
    torch.manual_seed(0)
    model = AttentionClassifier(VOCAB, CLASSES, tiny(**overrides)).eval()
    if model.wide is not None:
        torch.nn.init.normal_(model.wide.table.weight)
    return model


def batch(lengths: list[int], total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random non-pad ids [B, L] padded with 0 after each length, plus the lengths."""
    total = total or max(max(lengths), 1)
    ids = torch.randint(1, VOCAB, (len(lengths), total))
    lens = torch.tensor(lengths)
    ids[torch.arange(total)[None, :] >= lens[:, None]] = 0
    return ids, lens


GRID = list(itertools.product(["rnn", "gru", "lstm"], [False, True], ["linear", "additive"]))


@pytest.mark.parametrize(("cell", "bidirectional", "attention"), GRID)
def test_shapes_and_attention_mask(cell: str, bidirectional: bool, attention: str) -> None:
    model = make_model(cell=cell, bidirectional=bidirectional, attention=attention)
    ids, lens = batch([5, 2, 7])
    logits, attn = model(ids, lens)
    assert logits.shape == (3, CLASSES)
    assert attn.shape == (3, 7)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(3))
    pad = torch.arange(7)[None, :] >= lens[:, None]
    assert torch.all(attn[pad] == 0)
    assert torch.all(attn[~pad] > 0)


INVARIANCE = [
    *itertools.product(["rnn", "gru", "lstm"], [False, True], [1, 2], [0, 3], ["additive"]),
    ("gru", True, 1, 2, "linear"),
    ("lstm", False, 2, 0, "linear"),
]


@pytest.mark.parametrize(("cell", "bidirectional", "layers", "wide", "attention"), INVARIANCE)
def test_padding_invariance(
    cell: str, bidirectional: bool, layers: int, wide: int, attention: str
) -> None:
    model = make_model(
        cell=cell,
        bidirectional=bidirectional,
        num_layers=layers,
        wide_ngrams=wide,
        wide_buckets=32,
        attention=attention,
    )
    short, short_len = batch([3])
    long_ids, _ = batch([20])
    padded = torch.zeros(2, 20, dtype=torch.long)
    padded[0, :3] = short[0]
    padded[1] = long_ids[0]
    with torch.no_grad():
        alone, attn_alone = model(short, short_len)
        together, attn_together = model(padded, torch.tensor([3, 20]))
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(attn_together[0, :3], attn_alone[0], atol=1e-5, rtol=0)
    assert torch.all(attn_together[0, 3:] == 0)


def test_unmasked_softmax_weights_padding() -> None:
    model = make_model(mask_padding=False)
    ids, lens = batch([2, 9])
    _, attn = model(ids, lens)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(2))
    assert torch.all(attn[0, 2:] > 0)


def test_unpacked_rnn_runs_over_padding() -> None:
    """pack_sequences=False is the lesson's nn.RNN on the padded batch: padding changes it."""
    model = make_model(cell="rnn", bidirectional=False, attention="linear", mask_padding=False,
                       pack_sequences=False)  # fmt: skip
    ids, lens = batch([3], total=3)
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        out = model.rnn(model.embedding(padded))[0]
        scores = model.attention.score(out).squeeze(-1).softmax(-1)
        context = torch.bmm(scores.unsqueeze(1), out).squeeze(1)
        expected = model.fc2(torch.relu(model.fc1(context)))
        logits, attn = model(padded, lens)
        short, _ = model(ids, lens)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(attn, scores)
    assert not torch.allclose(short, logits)  # unlike the packed model, padding matters


@pytest.mark.parametrize("wide", [0, 2])
def test_zero_length_row(wide: int) -> None:
    model = make_model(wide_ngrams=wide, wide_buckets=16)
    ids, lens = batch([0, 4], total=4)
    logits, attn = model(ids, lens)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(attn[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_wide_path_short_texts_and_unigrams_only() -> None:
    for n in (1, 4):
        model = make_model(wide_ngrams=n, wide_buckets=16)
        ids, lens = batch([1, 2, 3])
        logits, _ = model(ids, lens)
        assert torch.isfinite(logits).all()


def test_wide_path_is_a_linear_bag_of_ngrams() -> None:
    """Wide scores = unit-normalised sum of the rows of the text's words and hashed bigrams."""
    model = make_model(wide_ngrams=2, wide_buckets=16)
    ids, lens = torch.tensor([[5, 9, 5, 0]]), torch.tensor([3])
    mask = torch.arange(4)[None, :] < lens[:, None]
    rows = [5, 9, 5] + [VOCAB + int(b) for b in hash_ngrams(ids, 2, 16)[0, :2]]
    expected = model.wide.table.weight[rows].sum(dim=0) / len(rows) ** 0.5
    wide = model.wide(*model._ngrams(ids, mask, 2))
    torch.testing.assert_close(wide[0], expected)
    shuffled = torch.tensor([[9, 5, 5, 0]])  # other bigrams: other scores
    wide = [model.wide(*model._ngrams(x, mask, 2)) for x in (shuffled, ids)]
    assert not torch.allclose(*wide)


def test_word_dropout_only_in_training() -> None:
    model = make_model(word_dropout=0.5)
    ids, _ = batch([30, 30])
    assert torch.equal(model._word_dropout(ids), ids)  # eval mode
    model.train()
    dropped = model._word_dropout(ids)
    changed = dropped != ids
    assert 0 < changed.float().mean() < 1
    assert torch.all(dropped[changed] == 1)  # replaced by <UNK>, never by padding
    pad_ids, _ = batch([2], total=30)
    assert torch.all(model._word_dropout(pad_ids)[0, 2:] == 0)


def test_hash_ngrams_in_range_and_order_sensitive() -> None:
    ids = torch.tensor([[3, 7, 3, 7, 0], [7, 3, 9, 1, 2]])
    h = hash_ngrams(ids, 2, 1000)
    assert h.shape == (2, 4)
    assert h.min() >= 0 and h.max() < 1000
    assert h[0, 0] == h[0, 2]  # same bigram, same bucket
    assert h[0, 0] != h[1, 0]  # (3, 7) vs (7, 3)
    assert hash_ngrams(ids, 2, 10**9)[0, 0] != hash_ngrams(ids, 3, 10**9)[0, 0]


@pytest.mark.parametrize("wide", [0, 2])
def test_gradients_reach_embeddings(wide: int) -> None:
    model = make_model(wide_ngrams=wide, wide_buckets=16).train()
    ids, lens = batch([4, 6, 2])
    logits, _ = model(ids, lens)
    logits.sum().backward()
    assert model.embedding.weight.grad is not None
    assert model.embedding.weight.grad.abs().sum() > 0
    assert torch.all(model.embedding.weight.grad[0] == 0)  # padding row stays frozen
    if wide:
        assert model.wide is not None and model.wide.table.weight.grad is not None
        assert model.wide.table.weight.grad.abs().sum() > 0


def test_embedding_init_std_and_zero_wide_table() -> None:
    torch.manual_seed(0)
    plain = AttentionClassifier(VOCAB, CLASSES, tiny(wide_ngrams=2, wide_buckets=16))
    torch.manual_seed(0)
    small = AttentionClassifier(
        VOCAB, CLASSES, tiny(wide_ngrams=2, wide_buckets=16, embedding_init_std=0.1)
    )
    torch.testing.assert_close(small.embedding.weight, plain.embedding.weight * 0.1)
    assert torch.all(small.embedding.weight[0] == 0)  # padding row
    assert small.wide is not None and torch.all(small.wide.table.weight == 0)
    torch.testing.assert_close(small.fc1.weight, plain.fc1.weight)  # same draws elsewhere
    with pytest.raises(UserError, match="embedding_init_std"):
        from_dict({"model": {"embedding_init_std": 0}})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cuda_autocast_and_invariance(cell: str) -> None:
    model = make_model(cell=cell, num_layers=2, wide_ngrams=3, wide_buckets=32).cuda()
    ids, lens = batch([3, 20, 0, 11])
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, attn = model(ids.cuda(), lens)  # lengths stay on the CPU
    assert torch.isfinite(logits).all() and torch.isfinite(attn).all()
    logits.float().sum().backward()
    assert torch.isfinite(model.embedding.weight.grad).all()
    assert torch.isfinite(model.wide.table.weight.grad).all()

    model.eval()
    with torch.no_grad():
        alone, _ = model(ids[:1, :3].cuda(), lens[:1])
        together, attn = model(ids.cuda(), lens)
    assert attn.dtype == torch.float32
    assert torch.all(attn[0, 3:] == 0)
    torch.testing.assert_close(together[:1], alone, atol=1e-4, rtol=0)


def test_wide_path_gets_its_own_learning_rate() -> None:
    model = make_model(wide_ngrams=2, wide_buckets=16)
    deep, wide = model.parameter_groups(wide_lr=0.05)
    assert wide["lr"] == 0.05 and "lr" not in deep  # the deep group takes the optimiser's lr
    assert wide["params"] == [model.wide.table.weight]
    assert len(deep["params"]) + 1 == len(list(model.parameters()))
    assert len(make_model().parameter_groups(wide_lr=0.05)) == 1


def fitted_naive_bayes(weight: float, **overrides: object) -> AttentionClassifier:
    """A tiny model whose naive Bayes path is fitted on TRAIN (words + bigrams)."""
    model = make_model(wide_ngrams=2, wide_buckets=16, naive_bayes=weight, **overrides)
    model.fit_naive_bayes(*TRAIN)
    return model


torch.manual_seed(1)
TRAIN = (*batch([int(n) for n in torch.randint(1, 9, (60,))]), torch.randint(0, CLASSES, (60,)))


def test_naive_bayes_matches_scikit_learn() -> None:
    """With weight 1 the model's probabilities are MultinomialNB's on the same n-gram counts."""
    from sklearn.naive_bayes import MultinomialNB

    model = fitted_naive_bayes(1.0, naive_bayes_alpha=0.5, naive_bayes_ngrams=3)

    def counts(ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Dense n-gram count matrix [B, rows] from the model's own feature rows."""
        mask = torch.arange(ids.shape[1])[None, :] < lens[:, None]
        features, valid = model._ngrams(ids, mask, 3)
        out = torch.zeros(len(ids), model.naive_bayes.log_probs.shape[0])
        return out.scatter_add_(1, features, valid)

    ids, lens, labels = TRAIN
    train_counts = counts(ids, lens)
    seen = train_counts.sum(dim=0) > 0  # scikit-learn's vocabulary: the n-grams seen in training
    nb = MultinomialNB(alpha=0.5).fit(train_counts[:, seen].numpy(), labels.numpy())
    test_ids, test_lens = batch([3, 8, 1, 5])
    with torch.no_grad():
        logits, _ = model.log_probs(test_ids, test_lens)
    expected = nb.predict_log_proba(counts(test_ids, test_lens)[:, seen].numpy())
    torch.testing.assert_close(logits.log_softmax(-1), torch.from_numpy(expected).float())


def test_naive_bayes_mixes_into_the_probabilities_not_the_network() -> None:
    model = fitted_naive_bayes(0.3, dropout=0.0, embedding_dropout=0.0)
    network = make_model(wide_ngrams=2, wide_buckets=16, dropout=0.0, embedding_dropout=0.0)
    network.load_state_dict(model.state_dict(), strict=False)  # the same net without the mix
    only_nb = fitted_naive_bayes(1.0)
    only_nb.load_state_dict(model.state_dict())
    ids, lens = batch([4, 7, 2])
    with torch.no_grad():
        mixed, attn = model.log_probs(ids, lens)
        net, net_attn = network(ids, lens)
        nb, _ = only_nb.log_probs(ids, lens)
        expected = 0.7 * net.softmax(-1) + 0.3 * nb.softmax(-1)
        torch.testing.assert_close(mixed.exp(), expected)
        torch.testing.assert_close(model.probabilities(ids, lens)[0], expected)
        torch.testing.assert_close(attn, net_attn)
        torch.testing.assert_close(model(ids, lens)[0], net)  # forward: the network alone


def test_naive_bayes_is_padding_invariant_and_saved_with_the_weights() -> None:
    model = fitted_naive_bayes(0.5)
    short, short_len = batch([3])
    padded = torch.zeros(1, 12, dtype=torch.long)
    padded[0, :3] = short[0]
    with torch.no_grad():
        torch.testing.assert_close(
            model.log_probs(padded, short_len)[0], model.log_probs(short, short_len)[0]
        )
    state = model.state_dict()
    assert {"naive_bayes.log_probs", "naive_bayes.log_prior"} <= set(state)
    restored = make_model(wide_ngrams=2, wide_buckets=16, naive_bayes=0.5)
    restored.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(
            restored.log_probs(short, short_len)[0], model.log_probs(short, short_len)[0]
        )


def test_naive_bayes_without_the_wide_path() -> None:
    model = make_model(naive_bayes=0.5)  # wide_ngrams 0: the naive Bayes path stands alone
    model.fit_naive_bayes(*TRAIN)
    ids, lens = batch([4, 1])
    with torch.no_grad():
        logits, _ = model.log_probs(ids, lens)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(2))
    assert model.wide is None


def test_forward_flops_of_the_default_architecture_by_hand() -> None:
    cfg = ModelConfig(embedding_dim=100, rnn_hidden_dim=128, attention_dim=64, hidden_dim=100)
    gru = 2 * 2 * 3 * 128 * (100 + 128)  # directions x FLOPs per MAC x gates x H x (E + H)
    attention = 2 * 256 * 64 + 2 * 64
    head = 2 * 256 * 100 + 2 * 100 * 4
    assert rnn_flops_per_token(cfg) == gru
    model = AttentionClassifier(50, 4, cfg)
    assert model.forward_flops(10.0) == 10 * (gru + attention + 2 * 256) + head
    wide = AttentionClassifier(50, 4, ModelConfig(**{**vars(cfg), "wide_ngrams": 2}))
    assert wide.forward_flops(10.0) - model.forward_flops(10.0) == 10 * 2 * 4 * 2


def test_a_second_rnn_layer_reads_both_directions() -> None:
    one = ModelConfig(cell="lstm", embedding_dim=8, rnn_hidden_dim=4, num_layers=1)
    two = ModelConfig(cell="lstm", embedding_dim=8, rnn_hidden_dim=4, num_layers=2)
    assert rnn_flops_per_token(two) - rnn_flops_per_token(one) == 2 * 2 * 4 * 4 * 12


def test_without_the_deep_path_only_the_wide_path_trains() -> None:
    model = make_model(deep=False, wide_ngrams=2, wide_buckets=64).train()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["wide.table.weight"]
    ids, lengths = batch([5, 3, 1])
    logits, attention = model(ids, lengths)
    wide = model.wide(*model._ngrams(ids, attention > 0, 2))
    assert torch.allclose(logits, wide)  # the wide path's scores, nothing else
    assert torch.allclose(attention.sum(1), torch.ones(3))
    assert attention[1, :3].tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(UserError, match="deep=false needs"):
        from_dict({"model": {"deep": False}})


def test_frozen_embeddings_get_no_gradient() -> None:
    model = make_model(freeze_embeddings=True).train()
    model(*batch([4, 2]))[0].sum().backward()
    assert model.embedding.weight.grad is None and model.fc2.weight.grad is not None
