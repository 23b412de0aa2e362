"""Faithfulness of token scores (ERASER, DeYoung et al. 2020): what erasing top tokens does.

For a text, its predicted class c and a score per token, the k top-scoring tokens are
- comprehensive when deleting them lowers p(c) a lot: p(c | text) - p(c | text without them);
- sufficient when keeping only them keeps p(c): p(c | text) - p(c | only them), lower is better.
Tokens are deleted from the sequence (the text gets shorter), as `attnclf.explain.influence` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnclf.explain.influence import compact
from attnclf.model.classifier import AttentionClassifier
from attnclf.model.layers import length_mask


def top_k(scores: Tensor, lengths: Tensor, k: int) -> Tensor:
    """Mask [B, L]: True at each text's `k` highest scores (all its tokens when it has fewer)."""
    inside = length_mask(lengths, scores.shape[1], scores.device)
    ranked = scores.float().masked_fill(~inside, float("-inf")).argsort(dim=1, descending=True)
    picked = torch.zeros_like(inside)
    picked.scatter_(1, ranked[:, :k], True)
    return picked & inside


@torch.inference_mode()
def erasure(
    model: AttentionClassifier, ids: Tensor, lengths: Tensor, probs: Tensor, scores: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """Per text [B]: comprehensiveness and sufficiency of its `k` top-scoring tokens.

    `probs` [B, C] are the whole texts' probabilities (`AttentionClassifier.probabilities`).
    """
    inside = length_mask(lengths, ids.shape[1], ids.device)
    picked = top_k(scores, lengths, k)
    without, without_len = compact(ids, inside & ~picked)
    only, only_len = compact(ids, picked)
    erased, _ = model.probabilities(torch.cat([without, only]), torch.cat([without_len, only_len]))
    c = probs.argmax(dim=1, keepdim=True)
    full = probs.gather(1, c).squeeze(1)
    B = len(ids)
    return full - erased[:B].gather(1, c).squeeze(1), full - erased[B:].gather(1, c).squeeze(1)
