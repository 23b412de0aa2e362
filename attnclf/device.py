"""Choosing the torch device and seeding every random number generator."""

from __future__ import annotations

import random

import numpy as np
import torch

from attnclf.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; a forced device must be available."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise UserError(
            f"train.device={name} but no {name.upper()} device is available; use auto or cpu"
        )
    return torch.device(name)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
