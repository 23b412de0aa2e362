"""Property-based tests: no input string makes cleaning, tokenizing or predicting raise."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnclf.config import PreprocessConfig
from attnclf.encoding.preprocess import Preprocessor, load_stopwords
from attnclf.encoding.tokenizer import PAD, UNK, Tokenizer
from attnclf.predict.base import EMPTY
from attnclf.predict.torch_backend import Predictor

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ODD = (
    " \t\n\r\x00\x07\x0b\x0c\x1b\x1c\x1f\x7f\x85\xa0\u1680\u2028\u2029\u200b\u3000\ufeff"
    "()[]<>-;.,!?'\"\\/İßﬁK̊é🎾👍🏽"
)
WORDS = ["the", "The", "of", "AND", "news", "tennis", "(", ")", "(x)", "!!!", PAD, UNK, "bush's"]

texts = st.one_of(
    st.text(),  # any code point except surrogates, control characters included
    st.text(
        alphabet=st.characters(
            categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "So", "Lo", "Nd", "P"]
        )
    ),  # control, format, lone surrogates (undecodable argv bytes), spaces, marks, emoji, ...
    st.text(alphabet=st.sampled_from(ODD + "abcXYZ019")),
    st.lists(st.sampled_from(WORDS + list(ODD)), max_size=30).map(" ".join),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=12), st.integers(500, 12_000)),
)
clean_texts = st.one_of(st.text(), st.text(alphabet=st.sampled_from(ODD + "abc")))  # no Cs
SWITCHES = ["lowercase", "stopwords", "remove_parentheses", "space_punctuation"]
SWITCHES.append("remove_non_alphanumeric")
STOPWORDS = load_stopwords()
PREPROCESSORS = {
    flags: Preprocessor(
        PreprocessConfig.lesson(**dict(zip(SWITCHES, flags, strict=True))), STOPWORDS
    )
    for flags in itertools.product([False, True], repeat=len(SWITCHES))
}


@PROPERTY
@given(text=texts, flags=st.sampled_from(sorted(PREPROCESSORS)))
def test_preprocessor_never_raises_and_normalises_spaces(text: str, flags: tuple) -> None:
    out = PREPROCESSORS[flags](text)
    assert isinstance(out, str)
    assert "  " not in out and out == out.strip()
    assert all(c == " " or not c.isspace() for c in out)
    cfg = PREPROCESSORS[flags].cfg
    if cfg.remove_non_alphanumeric:
        assert re.fullmatch(r"[A-Za-z0-9 ]*", out)
        if cfg.lowercase:
            assert out == out.lower()


@PROPERTY
@given(
    corpus=st.lists(texts, max_size=8),
    probes=st.lists(texts, max_size=4),
    level=st.sampled_from(["word", "char"]),
    num_tokens=st.one_of(st.none(), st.integers(1, 30)),
    min_freq=st.integers(1, 3),
)
def test_tokenizer_never_raises_and_ids_stay_in_range(
    corpus: list[str], probes: list[str], level: str, num_tokens: int | None, min_freq: int
) -> None:
    tok = Tokenizer(level, num_tokens, min_freq).fit(corpus)
    assert tok.vocab[:2] == [PAD, UNK] and len(set(tok.vocab)) == len(tok)
    everything = corpus + probes
    sequences = tok.texts_to_sequences(everything)
    for text, seq in zip(everything, sequences, strict=True):
        assert len(seq) == len(tok.tokenize(text))
        assert all(1 <= i < len(tok) for i in seq)  # 0 is padding only, never a text token
    sep = "" if level == "char" else " "
    expected = [
        sep.join(t if t in tok.index and t != PAD else UNK for t in tok.tokenize(text))
        for text in everything
    ]
    assert tok.sequences_to_texts(sequences) == expected
    assert tok.sequences_to_texts([[*s, 0, 0] for s in sequences]) == expected
    clone = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert clone.to_dict() == tok.to_dict()
    assert clone.texts_to_sequences(everything) == sequences


@pytest.fixture(scope="module")
def save_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for tokenizer files (module-scoped: hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("tokenizers")


@PROPERTY
@given(corpus=st.lists(clean_texts, max_size=6), level=st.sampled_from(["word", "char"]))
def test_tokenizer_file_round_trip(corpus: list[str], level: str, save_dir: Path) -> None:
    tok = Tokenizer(level).fit(corpus)
    loaded = Tokenizer.load(tok.save(save_dir / "tokenizer.json"))
    assert loaded.to_dict() == tok.to_dict()
    assert loaded.texts_to_sequences(corpus) == tok.texts_to_sequences(corpus)


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> Predictor:
    """The shared tiny run (conftest's `trained_run`), loaded once."""
    return Predictor.from_run(trained_run)


@PROPERTY
@given(text=texts)
def test_predict_never_raises(text: str, predictor: Predictor) -> None:
    (p,) = predictor.predict([text])
    assert p.text == text
    assert json.loads(p.to_json())["text"] == text and p.to_json().isascii()
    if not p.clean:
        assert p.label is None and p.error == EMPTY and p.probabilities == {}
        return
    assert p.error is None and p.label in predictor.run.labels.classes
    assert p.label == max(p.probabilities, key=p.probabilities.get)
    assert math.isclose(sum(p.probabilities.values()), 1, abs_tol=1e-4)
    assert 0 < len(p.tokens) == len(p.attention) <= predictor.max_len
    assert all(math.isfinite(w) and w >= 0 for w in p.attention)
    assert p.truncated == (len(predictor.run.tokenizer.tokenize(p.clean)) > predictor.max_len)


@PROPERTY
@given(batch=st.lists(texts, min_size=1, max_size=6))
def test_predict_batches_keep_order_and_flag_empty_texts(
    batch: list[str], predictor: Predictor
) -> None:
    predictions = predictor.predict(batch)
    assert [p.text for p in predictions] == batch
    assert [p.label is None for p in predictions] == [not p.clean for p in predictions]
