"""Pretrained word vectors (word2vec or GloVe text format) as the embeddings' starting point."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from attnclf.errors import UserError


def _is_header(fields: list[str]) -> bool:
    """word2vec's first line: the number of vectors and their width."""
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def read_vectors(path: str | Path, vocab: Sequence[str], dim: int) -> tuple[Tensor, Tensor, int]:
    """Rows [V, dim] for `vocab` from a vector file, which rows it held [V], and its size.

    Words the vocabulary lacks are skipped without parsing; a word listed twice keeps its
    first vector. Any problem with the file is a `UserError`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"pretrained embeddings not found: {path}; set model.pretrained_embeddings to a "
            f"word2vec/GloVe text file or to null"
        )
    index = {word: i for i, word in enumerate(vocab)}
    vectors = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    total = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                fields = line.rstrip().split(" ")
                if (number == 1 and _is_header(fields)) or fields == [""]:
                    continue
                total += 1
                if len(fields) != dim + 1:
                    raise UserError(
                        f"{path} line {number} has {len(fields) - 1} numbers after its word, but "
                        f"model.embedding_dim is {dim}; set model.embedding_dim to the vectors' "
                        f"width or use a {dim}-dimensional file"
                    )
                i = index.get(fields[0])
                if i is None or found[i]:
                    continue
                vectors[i] = torch.tensor([float(x) for x in fields[1:]])
                found[i] = True
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; pass a word2vec/GloVe text file") from None
    except ValueError:
        raise UserError(
            f"{path} line {number} is not `word x1 x2 ...` with numbers; pass a word2vec/GloVe "
            f"text file"
        ) from None
    if total == 0:
        raise UserError(f"{path} holds no word vectors; pass a word2vec/GloVe text file")
    return vectors, found, total


def coverage(found: Tensor, train_ids: Tensor) -> dict:
    """How much of the vocabulary (special tokens aside) and of the training tokens have vectors."""
    found = found.to(train_ids.device)
    tokens = train_ids[train_ids > 0]
    words = found[2:]  # <PAD>, <UNK> never get a vector
    return {
        "vocabulary_covered": int(words.sum()),
        "vocabulary_size": int(words.numel()),
        "vocabulary_coverage": round(float(words.float().mean()), 4) if words.numel() else 0.0,
        "train_token_coverage": round(float(found[tokens].float().mean()), 4),
    }
