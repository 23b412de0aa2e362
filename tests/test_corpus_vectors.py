"""In-domain PPMI + SVD word vectors: the counts, the PMI, the vectors, and a run built on them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TOPICS, write_topic_csv
from test_embeddings import WORDS, file_vectors, write_vectors

from attnclf.config import load_config
from attnclf.model.corpus_vectors import cooccurrence, ppmi, ppmi_vectors
from attnclf.training.build import build
from attnclf.training.train import train

SMOKE = Path(__file__).resolve().parent / "smoke.yaml"


def test_cooccurrence_counts_pairs_within_the_window_both_ways() -> None:
    ids = torch.tensor([[2, 3, 4, 0, 0], [4, 1, 2, 3, 0]])  # 0 pads, 1 is <UNK>
    counts = cooccurrence(ids, 5, window=1).toarray()
    expected = np.zeros((5, 5))
    for a, b in [(2, 3), (3, 4), (2, 3)]:  # <UNK> breaks 4-1 and 1-2 without joining 4 and 2
        expected[a, b] += 1
        expected[b, a] += 1
    assert (counts == expected).all()
    wider = cooccurrence(ids, 5, window=2).toarray()
    assert (
        wider[2, 4] == wider[4, 2] == 2
    )  # two apart in the first text, across <UNK> in the second
    assert wider[:2].sum() == wider[:, :2].sum() == 0


def test_ppmi_is_the_smoothed_pmi_where_positive() -> None:
    counts = np.array([[0, 4, 1], [4, 0, 0], [1, 0, 6]], dtype=float)
    got = ppmi(__import__("scipy.sparse", fromlist=["csr_matrix"]).csr_matrix(counts)).toarray()
    contexts = counts.sum(0) ** 0.75
    for w in range(3):
        for c in range(3):
            if counts[w, c] == 0:
                assert got[w, c] == 0
                continue
            pmi = math.log(counts[w, c] * contexts.sum() / (counts[w].sum() * contexts[c]))
            assert got[w, c] == pytest.approx(max(pmi, 0.0))
    assert (got >= 0).all() and (got == 0).any() and (got > 0).any()


def _topic_ids(per_topic: int = 200) -> tuple[torch.Tensor, list[str]]:
    """Texts of 4 words from one topic each, as ids over the topic words (after <PAD>, <UNK>)."""
    vocab = ["<PAD>", "<UNK>", *(w for words in TOPICS.values() for w in words.split())]
    index = {w: i for i, w in enumerate(vocab)}
    rng = np.random.default_rng(0)
    rows = []
    for words in TOPICS.values():
        for _ in range(per_topic):
            rows.append([index[w] for w in rng.choice(words.split(), 4, replace=False)])
    return torch.tensor(rows), vocab


def test_ppmi_vectors_place_words_of_one_topic_together() -> None:
    ids, vocab = _topic_ids()
    vectors, found = ppmi_vectors(ids, len(vocab) + 1, dim=8, norm=2.0, seed=0)
    assert vectors.shape == (len(vocab) + 1, 8)
    assert found.tolist() == [False, False] + [True] * (len(vocab) - 2) + [False]  # unseen last
    assert torch.allclose(vectors[found].norm(dim=1), torch.full((len(vocab) - 2,), 2.0))
    assert vectors[~found].abs().sum() == 0
    unit = torch.nn.functional.normalize(vectors[2 : len(vocab)], dim=1)
    similar = unit @ unit.T
    topic = torch.arange(len(vocab) - 2) // 6
    same = topic[:, None] == topic[None, :]
    off_diagonal = ~torch.eye(len(topic), dtype=torch.bool)
    assert similar[same & off_diagonal].min() > similar[~same].max()


def test_ppmi_vectors_of_a_vocabulary_smaller_than_the_width_fill_what_they_can() -> None:
    vectors, found = ppmi_vectors(torch.tensor([[2, 3, 4], [3, 2, 4]]), 5, dim=16, norm=1.0, seed=0)
    assert vectors.shape == (5, 16) and found.tolist() == [False, False, True, True, True]
    assert torch.allclose(vectors[2:].norm(dim=1), torch.ones(3))


def test_a_ppmi_start_is_reported_and_a_vector_file_overrides_its_words(tmp_path: Path) -> None:
    data = write_topic_csv(tmp_path / "news.csv", per_class=40)
    vectors = write_vectors(tmp_path / "v.txt", WORDS[:3])
    sets = [
        f"data.path={data}", "model.embedding_init=ppmi", "model.embedding_init_std=0.1",
        f"model.pretrained_embeddings={vectors}", "train.epochs=1", "train.num_threads=1",
    ]  # fmt: skip
    cfg = load_config(SMOKE, sets)
    pipeline = build(cfg)
    weight, index = pipeline.model.embedding.weight.detach(), pipeline.encoders.tokenizer.index
    for word, row in file_vectors(vectors).items():
        assert torch.allclose(weight[index[word]], row, atol=1e-4), word
    others = weight[[index[w] for w in WORDS[3:]]]
    assert torch.allclose(others.norm(dim=1), torch.full((len(WORDS) - 3,), 0.1 * 32**0.5))
    reports = pipeline.embedding_reports
    assert reports["ppmi_embeddings"]["vocabulary_coverage"] == 1.0
    assert reports["pretrained_embeddings"]["vocabulary_covered"] == 3

    run = train(cfg, "smoke", tmp_path / "out").run_dir
    report = json.loads((run / "data_report.json").read_text())
    assert report["ppmi_embeddings"]["train_token_coverage"] == 1.0
    assert report["ppmi_embeddings"]["seconds"] >= 0
