"""In-domain word vectors from the training texts themselves: PPMI + truncated SVD.

Levy, Goldberg & Dagan (2015), "Improving distributional similarity with lessons learned from
word embeddings": positive pointwise mutual information of word-context counts within a window,
with context counts smoothed by 0.75 as word2vec does, factored by SVD with the singular values'
square roots (eigenvalue weighting 0.5). About 4 s for 42,000 texts on 2 CPU cores; no vector
file, no download.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from attnclf.encoding.tokenizer import UNK_ID

WINDOW = 5  # words on either side that count as a word's context
SMOOTHING = 0.75  # context counts raised to this power before they become probabilities


def cooccurrence(ids: Tensor, vocab_size: int, window: int = WINDOW) -> sp.csr_matrix:
    """Symmetric counts [V, V] of words within `window` of each other in `ids` [N, L];
    padding and <UNK> neither count nor are counted. One distance at a time: memory stays at
    one [N, L] slice of pairs, not all of them."""
    ids = ids.cpu().numpy()
    valid = ids > UNK_ID
    shape = (vocab_size, vocab_size)
    counts = sp.csr_matrix(shape, dtype=np.float32)  # float32 halves the SVD's time
    for d in range(1, min(window, ids.shape[1] - 1) + 1):
        both = valid[:, :-d] & valid[:, d:]
        left, right = ids[:, :-d][both], ids[:, d:][both]
        pairs = sp.coo_matrix((np.ones(len(left), dtype=np.float32), (left, right)), shape)
        pairs = pairs.tocsr()
        counts = counts + pairs + pairs.T
    return counts.tocsr()


def ppmi(counts: sp.spmatrix) -> sp.csr_matrix:
    """Positive PMI of a count matrix, with context counts smoothed."""
    counts = counts.tocoo()
    words = np.asarray(counts.sum(axis=1)).ravel()
    contexts = np.asarray(counts.sum(axis=0)).ravel() ** SMOOTHING
    pmi = np.log(counts.data * contexts.sum() / (words[counts.row] * contexts[counts.col]))
    keep = pmi > 0
    kept = pmi[keep].astype(np.float32)
    return sp.csr_matrix((kept, (counts.row[keep], counts.col[keep])), shape=counts.shape)


def ppmi_vectors(
    ids: Tensor, vocab_size: int, dim: int, norm: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Vectors [V, dim] for the words in `ids` [N, L], each scaled to length `norm`, and which
    rows have one [V] (words with no positive-PMI context have none)."""
    from sklearn.utils.extmath import randomized_svd

    matrix = ppmi(cooccurrence(ids, vocab_size))
    vectors = np.zeros((vocab_size, dim))
    rank = min(dim, vocab_size - 1)
    if matrix.nnz and rank > 0:
        u, s, _ = randomized_svd(matrix, rank, random_state=seed)
        vectors[:, :rank] = u * np.sqrt(s)
    lengths = np.linalg.norm(vectors, axis=1)
    found = (matrix.getnnz(axis=1) > 0) & (lengths > 0)
    vectors[~found] = 0.0
    vectors[found] *= norm / lengths[found, None]
    return torch.from_numpy(vectors).float(), torch.from_numpy(found)
