"""The data report: sizes, class balance, text lengths and train/test leakage."""

from __future__ import annotations

import pandas as pd

from attnclf.data.prepare import Splits


def _lengths(texts: pd.Series) -> dict[str, float]:
    """Summary of token counts of whitespace-tokenized texts."""
    n = texts.str.split().str.len()
    return {
        "min": int(n.min()),
        "mean": round(float(n.mean()), 2),
        "median": float(n.median()),
        "p95": float(n.quantile(0.95)),
        "max": int(n.max()),
    }


def data_report(splits: Splits, max_seq_len: int | None = None) -> dict:
    """Rows per split, class counts, token lengths and verbatim overlaps with train."""
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    everything = pd.concat(parts.values())
    seen = set(splits.train["clean"])
    report = {
        "layout": splits.layout,
        "rows": {name: len(frame) for name, frame in parts.items()},
        "dropped": {
            "empty_text_or_label": splits.dropped_empty,
            "empty_after_preprocessing": splits.dropped_by_cleaning,
        },
        "classes": {
            name: {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()}
            for name, frame in parts.items()
        },
        "tokens_per_text": _lengths(everything["clean"]),
        "in_train_verbatim": {
            name: int(parts[name]["clean"].isin(seen).sum()) for name in ("val", "test")
        },
    }
    if max_seq_len is not None:
        longer = int((everything["clean"].str.split().str.len() > max_seq_len).sum())
        report["longer_than_max_seq_len"] = longer
    return report


def format_report(report: dict) -> str:
    """A short human-readable rendering of `data_report`."""
    rows = report["rows"]
    lines = [
        f"layout: {report['layout']}   rows: train {rows['train']}, val {rows['val']}, "
        f"test {rows['test']}",
        "dropped: {empty_text_or_label} empty text/label, {empty_after_preprocessing} empty after "
        "preprocessing".format(**report["dropped"]),
        "tokens per text: min {min}, mean {mean}, median {median}, p95 {p95}, max {max}".format(
            **report["tokens_per_text"]
        ),
        "classes (train/val/test):",
    ]
    for label, n in report["classes"]["train"].items():
        val, test = report["classes"]["val"].get(label, 0), report["classes"]["test"].get(label, 0)
        lines.append(f"  {label:<20} {n:>7} {val:>7} {test:>7}")
    leak = report["in_train_verbatim"]
    lines.append(
        f"also in train verbatim after preprocessing: val {leak['val']} of {rows['val']}, "
        f"test {leak['test']} of {rows['test']}"
    )
    return "\n".join(lines)
