"""Shared fixtures: the shared AG News sample, NLTK data, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

AG_NEWS_10K = Path(os.environ.get("ATTNCLF_AG_NEWS_10K", SHARED / "data" / "ag_news_titles_10k.csv"))


@pytest.fixture
def ag_news_10k() -> Path:
    """The shared 10k AG News titles; tests that need it skip when it is absent."""
    if not AG_NEWS_10K.is_file():
        pytest.skip(f"shared data not found at {AG_NEWS_10K} (set ATTNCLF_AG_NEWS_10K)")
    return AG_NEWS_10K


@pytest.fixture
def news_csv(tmp_path: Path) -> Path:
    """A small made-up CSV in Made-With-ML's news.csv layout, 4 classes x 12 rows."""
    topics = {
        "World": "minister election parliament troops ceasefire embassy",
        "Sports": "tennis match goal league coach tournament",
        "Business": "stocks profit shares market earnings merger",
        "Sci/Tech": "software internet chip space nasa computer",
    }
    rows = ["title,category"]
    for label, words in topics.items():
        w = words.split()
        for i in range(12):
            rows.append(f'"{w[i % 6].title()} {w[(i + 1) % 6]} news {w[(i + 2) % 6]} {i}",{label}')
    path = tmp_path / "news.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
