"""Terminal rendering of predictions for the CLI: a block per text, influence and attention."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from attnclf.predict.base import Prediction

_BLOCKS = " ▏▎▍▌▋▊▉█"


def display(text: str, width: int) -> str:
    """`text` on one line, control characters escaped, cut to `width` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: width + 1])
    return text if len(text) <= width else text[: width - 1] + "…"


def _bar(value: float, top: float, width: int) -> str:
    """A bar of `value / top` of `width` cells, drawn in eighths of a cell."""
    eighths = round(value / top * width * 8)
    return "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")


def explanation_lines(
    tokens: Sequence[str], influence: Sequence[float], attention: Sequence[float], width: int = 12
) -> str:
    """One line per token, in text order: influence (signed bar, value) and attention (value, bar).

    Bars are scaled to the text's largest |influence| and largest attention weight.
    """
    top_i = max((abs(v) for v in influence), default=0.0) or 1.0
    top_a = max(attention, default=0.0) or 1.0
    shown = [display(t, 20) for t in tokens]
    pad = max([len("token"), *(len(t) for t in shown)])
    lines = [f"    {'token':<{pad}}  {'influence':<{2 * width + 8}}  attention"]
    for token, i, a in zip(shown, influence, attention, strict=True):
        negative = "█" * round(-i / top_i * width) if i < 0 else ""
        positive = _bar(i, top_i, width) if i > 0 else ""
        lines.append(
            f"    {token:<{pad}}  {i:+.3f} {negative:>{width}}│{positive:<{width}}"
            f"  {a:.3f} {_bar(a, top_a, width)}"
        )
    return "\n".join(lines)


def format_prediction(index: int, p: Prediction, explain: bool = False) -> str:
    """A human-readable block for one prediction; `explain` adds influence and attention per token.

    Explaining needs a prediction made with `explain=True` (it carries the influence).
    """
    lines = [f"[{index}] {display(p.text, 100)}"]
    if p.error is not None:
        return "\n".join([*lines, f"    error: {p.error}"])
    lines.append(
        "    " + "   ".join(f"{label} {prob:.3f}" for label, prob in p.probabilities.items())
    )
    if p.truncated:
        lines.append(f"    (truncated to its first {len(p.tokens)} tokens)")
    if explain:
        if p.influence is None:
            raise ValueError("predict with explain=True to show influence")
        lines.append(explanation_lines(p.tokens, p.influence, p.attention))
    return "\n".join(lines)


def plot_prediction(p: Prediction, path: str | Path) -> Path:
    """Save heatmaps of influence and attention over the tokens of one explained prediction."""
    from attnclf.plots import plot_explanation

    if p.influence is None:
        raise ValueError("predict with explain=True to plot influence")
    title = f"{p.label} ({p.probabilities[p.label]:.2f}): {display(p.text, 60)}"
    return plot_explanation(p.tokens, p.influence, p.attention, title, path)
