"""Text cleaning: the lesson's example, each switch, odd input, and NLTK stopword loading."""

from __future__ import annotations

import nltk
import nltk.corpus
import pytest

from attnclf.config import PreprocessConfig
from attnclf.encoding.preprocess import Preprocessor, load_stopwords
from attnclf.errors import UserError

TEXT = "Oil Prices Hit Record (Reuters) -- U.S. Stocks Fall; Dow's <b>down</b> 2.5%!"


@pytest.fixture(scope="module")
def stopwords() -> list[str]:
    return load_stopwords()


def clean(text: str, words: list[str], **switches: bool) -> str:
    return Preprocessor(PreprocessConfig.lesson(**switches), words)(text)


def test_nltk_english_stopwords(stopwords: list[str]) -> None:
    assert len(stopwords) == 179
    assert {"the", "for", "a", "don't", "s"} <= set(stopwords)


def test_lesson_example(stopwords: list[str]) -> None:
    assert clean("Great week for the NYSE!", stopwords) == "great week nyse"


def test_from_config_loads_stopwords_only_when_asked() -> None:
    assert "the" in Preprocessor.from_config(PreprocessConfig.lesson()).stopwords
    assert (
        Preprocessor.from_config(PreprocessConfig.lesson(stopwords=False)).stopwords == frozenset()
    )


def test_all_steps_on(stopwords: list[str]) -> None:
    assert clean(TEXT, stopwords) == "oil prices hit record u stocks fall dow b b 2 5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the lesson's \b(stopword)\b\s* splits at apostrophes, so a possessive 's vanishes
        ("A bargain hunter's paradise", "bargain hunter paradise"),
        ("What's Cool In the Pool", "cool pool"),
        ("Don't Panic", "panic"),
        ("Wall St. Bears Claw Back Into the Black (Reuters)", "wall st bears claw back black"),
        # a stopword inside a longer word is kept
        ("Theory of Another Island", "theory another island"),
    ],
)
def test_lesson_cases(stopwords: list[str], text: str, expected: str) -> None:
    assert clean(text, stopwords) == expected


def test_lowercase_off_keeps_case_and_still_drops_stopwords(stopwords: list[str]) -> None:
    assert clean("The NYSE Rally for Apple", stopwords, lowercase=False) == "NYSE Rally Apple"
    assert clean(TEXT, stopwords, lowercase=False).startswith("Oil Prices Hit Record U Stocks")


def test_stopwords_off(stopwords: list[str]) -> None:
    assert clean("Great week for the NYSE!", stopwords, stopwords=False) == (
        "great week for the nyse"
    )
    assert (
        Preprocessor(PreprocessConfig.lesson(stopwords=False), stopwords).stopwords == frozenset()
    )


def test_without_a_stopword_list_nothing_is_dropped() -> None:
    assert Preprocessor(PreprocessConfig.lesson())("Great week for the NYSE!") == (
        "great week for the nyse"
    )


def test_parentheses_switch(stopwords: list[str]) -> None:
    text = "Stocks Rally (Reuters)"
    assert clean(text, stopwords) == "stocks rally"
    assert clean(text, stopwords, remove_parentheses=False) == "stocks rally reuters"
    kept = clean(text, stopwords, remove_parentheses=False, remove_non_alphanumeric=False)
    assert kept == "stocks rally (reuters)"


def test_space_punctuation_switch(stopwords: list[str]) -> None:
    off = dict(remove_non_alphanumeric=False, stopwords=False)
    assert clean("Up 2.5%, then down!", stopwords, **off) == "up 2 . 5% , then down !"
    assert clean("Up 2.5%, then down!", stopwords, space_punctuation=False, **off) == (
        "up 2.5%, then down!"
    )


def test_non_alphanumeric_switch(stopwords: list[str]) -> None:
    assert clean("AT&T's #1 deal: $9B", stopwords, stopwords=False) == "at t s 1 deal 9b"
    assert clean(
        "AT&T's #1 deal: $9B", stopwords, stopwords=False, remove_non_alphanumeric=False
    ) == ("at&t's #1 deal: $9b")


def test_everything_off_only_collapses_whitespace() -> None:
    cfg = PreprocessConfig(
        lowercase=False,
        stopwords=False,
        remove_parentheses=False,
        space_punctuation=False,
        remove_non_alphanumeric=False,
    )
    assert Preprocessor(cfg)("  The (AP)\tNYSE,\n\n up!  ") == "The (AP) NYSE, up!"


def test_whitespace_collapse(stopwords: list[str]) -> None:
    assert clean("  stocks \t\t rally \n\r\n higher  ", stopwords) == "stocks rally higher"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\u200b\u00a0\u2028",
        "日本語のテキスト",
        "😀 emoji!!",
        "\ud800 lone surrogate",
        "\ufb01nance \u0130stanbul",
        "))((",
        "(unclosed paren",
        "\x00\x01\x7f",
        "the a an of",
    ],
)
def test_odd_unicode_never_raises(stopwords: list[str], text: str) -> None:
    out = clean(text, stopwords)
    assert isinstance(out, str)
    assert out == out.strip()
    assert "  " not in out
    assert all(c.isascii() and (c.isalnum() or c == " ") for c in out)
    raw = clean(text, stopwords, remove_non_alphanumeric=False, lowercase=False)
    assert isinstance(raw, str)


def test_batch_matches_single_calls(stopwords: list[str]) -> None:
    pre = Preprocessor(PreprocessConfig.lesson(), stopwords)
    texts = ["Great week for the NYSE!", TEXT, ""]
    assert pre.batch(texts) == [pre(t) for t in texts]


class _MissingCorpus:
    def words(self, lang: str) -> list[str]:
        raise LookupError("Resource stopwords not found.")


def test_load_stopwords_failure_names_nltk_data(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(nltk.corpus, "stopwords", _MissingCorpus())
    monkeypatch.setattr(nltk, "download", lambda *a, **k: calls.append(a) or False)
    with pytest.raises(UserError) as err:
        load_stopwords()
    message = str(err.value)
    assert "NLTK_DATA" in message
    assert "preprocess.stopwords=false" in message
    assert calls == [("stopwords",)]


def test_load_stopwords_download_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> bool:
        raise OSError("network unreachable")

    monkeypatch.setattr(nltk.corpus, "stopwords", _MissingCorpus())
    monkeypatch.setattr(nltk, "download", offline)
    with pytest.raises(UserError, match="NLTK_DATA"):
        load_stopwords()


def test_load_stopwords_downloads_once_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Corpus:
        installed = False

        def words(self, lang: str) -> list[str]:
            if not self.installed:
                raise LookupError("missing")
            return ["the", "a"]

    corpus = Corpus()

    def download(*args: object, **kwargs: object) -> bool:
        corpus.installed = True
        return True

    monkeypatch.setattr(nltk.corpus, "stopwords", corpus)
    monkeypatch.setattr(nltk, "download", download)
    assert load_stopwords() == ["the", "a"]
