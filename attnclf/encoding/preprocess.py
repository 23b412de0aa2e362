"""Text cleaning: the Made-With-ML lesson's steps, each switchable, with regexes compiled once."""

from __future__ import annotations

import re
from collections.abc import Iterable

from attnclf.config import PreprocessConfig
from attnclf.errors import UserError

_PARENTHESES = re.compile(r"\([^)]*\)")
_PUNCTUATION = re.compile(r"([-;.,!?<=>])")
_NON_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]+")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+\s*")  # like the lesson's \b(stopword)\b\s*: "bush's" -> "bush'"


def load_stopwords() -> list[str]:
    """NLTK's English stopwords, downloading the corpus once if it is not installed."""
    import nltk
    from nltk.corpus import stopwords

    try:
        return stopwords.words("english")
    except LookupError:
        pass
    try:
        if nltk.download("stopwords", quiet=True, raise_on_error=True):
            return stopwords.words("english")
    except Exception:
        pass
    raise UserError(
        "NLTK's stopwords corpus is not installed and could not be downloaded; run "
        "`python -m nltk.downloader stopwords` on a machine with internet, or set NLTK_DATA "
        "to a folder that holds corpora/stopwords, or set preprocess.stopwords=false"
    )


class Preprocessor:
    """Cleans raw text the same way at training and prediction time."""

    def __init__(self, cfg: PreprocessConfig, stopwords: Iterable[str] = ()) -> None:
        if cfg.auto_keys():
            raise ValueError(
                f"preprocess.{cfg.auto_keys()[0]} is `auto`: choose it from the data first "
                f"(attnclf.data.prepare.prepare(cfg, path) does)"
            )
        self.cfg = cfg
        self.stopwords = frozenset(w.lower() for w in stopwords) if cfg.stopwords else frozenset()

    @classmethod
    def from_config(cls, cfg: PreprocessConfig) -> Preprocessor:
        """A preprocessor whose stopwords come from NLTK when the config asks for them."""
        return cls(cfg, load_stopwords() if cfg.stopwords else ())

    def __call__(self, text: str) -> str:
        """Clean one text; never raises on any string."""
        cfg = self.cfg
        if cfg.lowercase:
            text = text.lower()
        if self.stopwords:
            text = _WORD.sub(self._drop_stopword, text)
        if cfg.remove_parentheses:
            text = _PARENTHESES.sub("", text)
        if cfg.remove_non_alphanumeric:  # one space per run: spacing punctuation first, or
            return _NON_ALPHANUMERIC.sub(" ", text).strip()  # squeezing spaces after, is moot
        if cfg.space_punctuation:
            text = _PUNCTUATION.sub(r" \1 ", text)
        return _SPACES.sub(" ", text).strip()

    def _drop_stopword(self, match: re.Match) -> str:
        """Regex callback: a whole word (with its trailing space) vanishes if it is a stopword."""
        word = match.group()
        return "" if word.rstrip().lower() in self.stopwords else word

    def batch(self, texts: Iterable[str]) -> list[str]:
        """Clean many texts."""
        return [self(t) for t in texts]
