"""`preprocess: auto`: each cleaning step that can hurt is chosen from the data.

A greedy search over the `auto` steps, starting from the light cleaning (lowercase, keep
stopwords and parentheses, drop punctuation): each round tries flipping every step not yet
flipped and keeps the flip that raises the validation accuracy of a multinomial naive Bayes
over word 1-2 grams (closed form: a fraction of a second per candidate) the most; it stops
when no flip raises it by `MIN_GAIN` (half a point: a smaller gain is within the noise of a
validation split, and the naive Bayes is not the network that will train on the choice).
The test split is never read. Large data is scored on a sample of it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from attnclf.config import PreprocessConfig
from attnclf.encoding.preprocess import Preprocessor, load_stopwords
from attnclf.errors import UserError

if TYPE_CHECKING:
    from attnclf.config import Config
    from attnclf.data.prepare import RawSplits

log = logging.getLogger(__name__)

START = {  # the search's first candidate: cleaning that keeps the words
    "lowercase": True,
    "stopwords": False,
    "remove_parentheses": False,
    "remove_non_alphanumeric": True,
}
MIN_GAIN = 0.005  # a flip must raise the validation accuracy by half a point: less is noise
MAX_TRAIN, MAX_VAL = 20_000, 10_000  # rows scored per candidate: the search stays ~seconds
ALPHA = 0.5  # the naive Bayes' smoothing


def naive_bayes_accuracy(
    train: list[str], train_labels: list[str], val: list[str], val_labels: list[str]
) -> float:
    """Validation accuracy of a multinomial naive Bayes over whitespace word 1-2 grams."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB

    vectorizer = CountVectorizer(token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2))
    try:
        x = vectorizer.fit_transform(train)
    except ValueError:  # every text empty
        return 0.0
    model = MultinomialNB(alpha=ALPHA).fit(x, train_labels)
    return float((model.predict(vectorizer.transform(val)) == val_labels).mean())


def describe(cfg: PreprocessConfig) -> str:
    """The cleaning in words, e.g. `lowercase, keep stopwords, keep parentheses, no punctuation`."""
    return ", ".join(
        [
            "lowercase" if cfg.lowercase else "keep case",
            "drop stopwords" if cfg.stopwords else "keep stopwords",
            "drop parentheses" if cfg.remove_parentheses else "keep parentheses",
            "no punctuation" if cfg.remove_non_alphanumeric else "keep punctuation",
        ]
    )


def _stopwords_or_none() -> list[str] | None:
    """NLTK's stopwords, or None (with a warning) when they cannot be had."""
    try:
        return load_stopwords()
    except UserError as exc:
        log.warning("preprocess.stopwords=auto keeps stopwords: %s", exc)
        return None


def resolve_preprocessing(cfg: Config, raw: RawSplits) -> tuple[PreprocessConfig, dict | None]:
    """The config's preprocessing with every `auto` step chosen on the validation split, and a
    report of the search (None when nothing was `auto`)."""
    pre = cfg.preprocess
    keys = pre.auto_keys()
    if not keys:
        return pre, None
    start_time = time.perf_counter()
    stopwords = _stopwords_or_none() if "stopwords" in keys else ()
    fixed = {"stopwords": False} if stopwords is None else {}
    keys = [k for k in keys if k not in fixed]
    current = dataclasses.replace(pre, **{k: START[k] for k in keys}, **fixed)
    train, val = raw.train.iloc[:MAX_TRAIN], raw.val.iloc[:MAX_VAL]
    texts, labels = (
        (train["text"].tolist(), val["text"].tolist()),
        (
            train["label"].tolist(),
            val["label"].to_numpy(),
        ),
    )

    def score(candidate: PreprocessConfig) -> float:
        """The candidate's naive Bayes validation accuracy."""
        clean = Preprocessor(candidate, stopwords or ())
        return naive_bayes_accuracy(
            clean.batch(texts[0]), labels[0], clean.batch(texts[1]), labels[1]
        )

    best = score(current)
    candidates = [{**dataclasses.asdict(current), "val_accuracy": best}]
    while keys:
        tried = {}
        for key in keys:
            candidate = dataclasses.replace(current, **{key: not getattr(current, key)})
            tried[key] = (score(candidate), candidate)
            candidates.append({**dataclasses.asdict(candidate), "val_accuracy": tried[key][0]})
        key = max(tried, key=lambda k: tried[k][0])
        if tried[key][0] < best + MIN_GAIN:
            break
        best, current = tried[key]
        keys.remove(key)
    report = {
        "scorer": f"multinomial naive Bayes (word 1-2 grams, alpha {ALPHA}), validation accuracy",
        "train_texts": len(train),
        "val_texts": len(val),
        "candidates": candidates,
        "chosen": dataclasses.asdict(current),
        "chosen_val_accuracy": best,
        "seconds": round(time.perf_counter() - start_time, 2),
    }
    return current, report
