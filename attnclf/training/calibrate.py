"""Choices made on the validation split after training, without retraining.

`model.naive_bayes: auto`: the network trains beside a naive Bayes weighted 0.4; afterwards
the weight in 0, 0.1, ..., 1 is kept whose mixture has the lowest validation loss (0 drops the
path). `model.temperature: auto`: the model's scores are divided by the temperature with the
lowest validation loss (Guo et al. 2017), which calibrates the probabilities and keeps every
label. Both are chosen together, on every rank alike (the losses are summed over ranks).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from attnclf.config import ModelConfig
from attnclf.model.classifier import AttentionClassifier
from attnclf.training.distributed import DistContext, all_reduce_sum_cpu

WEIGHTS = [i / 10 for i in range(11)]
TEMPERATURES = [round(math.exp(x), 4) for x in torch.linspace(-1.5, 1.5, 61).tolist()]


@torch.no_grad()
def _parts(model: AttentionClassifier, loader: DataLoader) -> tuple[Tensor, Tensor | None, Tensor]:
    """The network's and naive Bayes' validation log-probabilities, and the labels (CPU)."""
    model.eval()
    net, nb, labels = [], [], []
    for batch in loader:
        device = next(model.parameters()).device
        n, b = model.parts(batch.ids.to(device), batch.lengths)
        net.append(n.cpu())
        nb.append(None if b is None else b.cpu())
        labels.append(batch.labels.cpu())
    nb_all = None if not nb or nb[0] is None else torch.cat(nb)
    return torch.cat(net), nb_all, torch.cat(labels)


def _mix(net: Tensor, nb: Tensor | None, w: float) -> Tensor:
    """log((1 - w) * exp(net) + w * exp(nb)), as `NaiveBayes.mix` computes it."""
    if nb is None or w == 0:
        return net
    if w == 1:
        return nb
    return torch.logaddexp(net + math.log1p(-w), nb + math.log(w))


def calibrate(
    model: AttentionClassifier, loader: DataLoader, cfg: ModelConfig, ctx: DistContext
) -> dict | None:
    """Choose the `auto` naive Bayes weight and temperature on `loader` (validation), apply
    them to `model` and `cfg` (resolved values), and report them; None when nothing is auto."""
    auto_weight = cfg.naive_bayes == "auto" and model.naive_bayes is not None
    auto_temperature = cfg.temperature == "auto"
    if cfg.naive_bayes == "auto" and model.naive_bayes is None:
        cfg.naive_bayes = 0.0
    if not (auto_weight or auto_temperature):
        return None
    net, nb, labels = _parts(model, loader)
    trained_w = model.naive_bayes.weight if model.naive_bayes is not None else 0.0
    weights = WEIGHTS if auto_weight else [trained_w]
    temperatures = TEMPERATURES if auto_temperature else [model.temperature]
    loss = torch.zeros(len(weights), len(temperatures), dtype=torch.float64)
    correct = torch.zeros(len(weights), dtype=torch.float64)
    for i, w in enumerate(weights):
        mix = _mix(net, nb, w)
        correct[i] = (mix.argmax(-1) == labels).sum()
        for j, t in enumerate(temperatures):
            picked = torch.log_softmax(mix / t, dim=-1).gather(1, labels[:, None])
            loss[i, j] = -picked.double().sum()
    device = next(model.parameters()).device
    stats = torch.cat([loss.flatten(), correct, torch.tensor([len(labels)], dtype=loss.dtype)])
    stats = all_reduce_sum_cpu(stats, ctx, device)
    loss = stats[: loss.numel()].view_as(loss)
    correct, total = stats[loss.numel() : -1], stats[-1].clamp(min=1)
    best = int(loss.argmin())
    i, j = divmod(best, len(temperatures))
    w, t = weights[i], temperatures[j]
    start = (  # the weight trained with, at temperature 1 (or the fixed one)
        weights.index(trained_w) if trained_w in weights else 0,
        temperatures.index(1.0) if 1.0 in temperatures else 0,
    )
    report = {
        "val_texts": int(total),
        "val_loss_before": float(loss[start] / total),
        "val_loss_after": float(loss[i, j] / total),
        "val_accuracy_before": float(correct[start[0]] / total),
        "val_accuracy_after": float(correct[i] / total),
    }
    if auto_weight:
        cfg.naive_bayes = w
        if w == 0:
            model.naive_bayes = None  # its tables are not saved: the config has no path
        else:
            model.naive_bayes.weight = w
        report["naive_bayes"] = w
    if auto_temperature:
        cfg.temperature = model.temperature = t
        report["temperature"] = t
    return report
