"""PNG figures: learning curves, the confusion matrix, influence and attention over tokens."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from attnclf.jsonio import write_bytes_atomic


def _figure():
    """A pyplot module on the headless Agg backend (imported only when a plot is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    """Render a figure to PNG and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _figure().close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def plot_history(history: Sequence[dict], path: str | Path) -> Path:
    """Train/val loss and val F1/accuracy per epoch."""
    plt = _figure()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val")
    ax1.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax1.legend()
    ax2.plot(epochs, [h["val_f1"] for h in history], marker="o", label="val weighted F1")
    ax2.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="val accuracy")
    ax2.set(xlabel="epoch", title="Validation")
    ax2.legend()
    return _save(fig, path)


def plot_confusion(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path
) -> Path:
    """Confusion matrix heatmap with counts (rows true, columns predicted)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    top = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            ax.text(
                j, i, str(n), ha="center", va="center", color="white" if n > top / 2 else "black"
            )
    ax.set_title("Confusion matrix")
    return _save(fig, path)


def plot_explanation(
    tokens: Sequence[str],
    influence: Sequence[float],
    attention: Sequence[float],
    title: str,
    path: str | Path,
) -> Path:
    """Two heatmap rows over the tokens of a text: influence (signed, blue-red) and attention."""
    plt = _figure()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(4, 0.9 * len(tokens)), 2.8), sharex=True)
    for ax, values, cmap, signed, name in (
        (top, influence, "RdBu_r", True, "influence"),
        (bottom, attention, "Reds", False, "attention"),
    ):
        scale = max((abs(v) for v in values), default=0.0) or 1.0
        ax.imshow(
            [list(values)], cmap=cmap, aspect="auto", vmin=-scale if signed else 0, vmax=scale
        )
        ax.set(yticks=[0])
        ax.set_yticklabels([name])
        for j, v in enumerate(values):
            color = "white" if abs(v) > 0.6 * scale else "black"
            label = f"{v:+.2f}" if signed else f"{v:.2f}"
            ax.text(j, 0, label, ha="center", va="center", fontsize=8, color=color)
    top.set_title(title)
    bottom.set(xticks=range(len(tokens)))
    bottom.set_xticklabels(tokens, rotation=45, ha="right")
    return _save(fig, path)
