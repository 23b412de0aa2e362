"""Terminal rendering of predictions for the CLI: a block per text, attention as bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from attnclf.prediction import Prediction

_BLOCKS = " ▏▎▍▌▋▊▉█"


def display(text: str, width: int) -> str:
    """`text` on one line, control characters escaped, cut to `width` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: width + 1])
    return text if len(text) <= width else text[: width - 1] + "…"


def attention_bars(tokens: Sequence[str], weights: Sequence[float], width: int = 24) -> str:
    """One line per token: the token, a bar (full for the top weight) and its attention weight."""
    top = max(weights, default=0.0) or 1.0
    shown = [display(t, 20) for t in tokens]
    pad = max((len(t) for t in shown), default=0)
    lines = []
    for token, w in zip(shown, weights, strict=True):
        eighths = round(w / top * width * 8)
        bar = "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")
        lines.append(f"    {token:<{pad}}  {bar:<{width}}  {w:.3f}")
    return "\n".join(lines)


def format_prediction(index: int, p: Prediction, explain: bool = False) -> str:
    """A human-readable block for one prediction (with attention bars when `explain`)."""
    lines = [f"[{index}] {display(p.text, 100)}"]
    if p.error is not None:
        return "\n".join([*lines, f"    error: {p.error}"])
    lines.append(
        "    " + "   ".join(f"{label} {prob:.3f}" for label, prob in p.probabilities.items())
    )
    if p.truncated:
        lines.append(f"    (truncated to its first {len(p.tokens)} tokens)")
    if explain:
        lines.append(attention_bars(p.tokens, p.attention))
    return "\n".join(lines)


def plot_prediction(p: Prediction, path: str | Path) -> Path:
    """Save the lesson's heatmap of attention over the tokens of one prediction as PNG."""
    from attnclf.plots import plot_attention

    title = f"{p.label} ({p.probabilities[p.label]:.2f}): {display(p.text, 60)}"
    return plot_attention(p.tokens, p.attention, title, path)
