"""Tokenizer and LabelEncoder: vocabulary policy, unknowns, and JSON round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnclf.encoding.labels import LabelEncoder
from attnclf.encoding.tokenizer import PAD, UNK, Tokenizer
from attnclf.errors import UserError

TEXTS = ["b a c a", "c a d", "b e a"]  # a:4, b:2, c:2, d:1, e:1


def test_special_tokens() -> None:
    tok = Tokenizer()
    assert tok.vocab == [PAD, UNK] == ["<PAD>", "<UNK>"]
    assert tok.index == {PAD: 0, UNK: 1}
    assert len(tok) == 2
    assert tok.fit(TEXTS).vocab[:2] == [PAD, UNK]


def test_frequency_order_with_alphabetical_ties() -> None:
    tok = Tokenizer().fit(TEXTS)
    assert tok.vocab == [PAD, UNK, "a", "b", "c", "d", "e"]
    assert tok.index["a"] == 2 and tok.index["e"] == 6
    assert len(tok) == 7


def test_order_does_not_depend_on_text_order() -> None:
    assert Tokenizer().fit(TEXTS).vocab == Tokenizer().fit(TEXTS[::-1]).vocab


def test_num_tokens_keeps_most_frequent() -> None:
    tok = Tokenizer(num_tokens=2).fit(TEXTS)
    assert tok.vocab == [PAD, UNK, "a", "b"]
    assert tok.texts_to_sequences(["a b c"]) == [[2, 3, 1]]
    assert len(Tokenizer(num_tokens=100).fit(TEXTS)) == 7


def test_min_freq() -> None:
    assert Tokenizer(min_freq=2).fit(TEXTS).vocab == [PAD, UNK, "a", "b", "c"]
    assert Tokenizer(min_freq=5).fit(TEXTS).vocab == [PAD, UNK]
    assert Tokenizer(min_freq=2, num_tokens=1).fit(TEXTS).vocab == [PAD, UNK, "a"]


def test_char_level() -> None:
    tok = Tokenizer(level="char").fit(["abca", "ab"])
    assert tok.tokenize("ab c") == ["a", "b", " ", "c"]
    assert tok.vocab == [PAD, UNK, "a", "b", "c"]
    seqs = tok.texts_to_sequences(["cab", "xa"])
    assert seqs == [[4, 2, 3], [1, 2]]
    assert tok.sequences_to_texts([[4, 2, 3, 0, 0]]) == ["cab"]


def test_fitted_only_on_given_texts() -> None:
    tok = Tokenizer().fit(["train words only"])
    assert "test" not in tok.index
    assert tok.vocab == [PAD, UNK, "only", "train", "words"]
    assert tok.texts_to_sequences(["test words"]) == [[1, 4]]


def test_refit_replaces_vocabulary() -> None:
    tok = Tokenizer().fit(["old words"])
    tok.fit(["new"])
    assert tok.vocab == [PAD, UNK, "new"]


def test_unknown_tokens_map_to_one() -> None:
    tok = Tokenizer().fit(TEXTS)
    assert tok.texts_to_sequences(["a zzz b", "", "qq"]) == [[2, 1, 3], [], [1]]


def test_special_token_strings_are_not_vocabulary() -> None:
    tok = Tokenizer().fit(["<PAD> <UNK> a"])
    assert tok.vocab == [PAD, UNK, "a"]


def test_sequences_to_texts_skips_padding() -> None:
    tok = Tokenizer().fit(TEXTS)
    seqs = tok.texts_to_sequences(["c a d", "e"])
    padded = [s + [0] * (4 - len(s)) for s in seqs]
    assert tok.sequences_to_texts(padded) == ["c a d", "e"]
    assert tok.sequences_to_texts([[2, 1, 3]]) == [f"a {UNK} b"]


def test_save_load_round_trip(tmp_path: Path) -> None:
    tok = Tokenizer(level="word", num_tokens=8, min_freq=1).fit([*TEXTS, "naïve café 東京"])
    assert "東京" in tok.vocab and len(tok) == 10
    path = tok.save(tmp_path / "sub" / "tokenizer.json")
    assert path == tmp_path / "sub" / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {"level": "word", "num_tokens": 8, "min_freq": 1, "vocab": tok.vocab}
    loaded = Tokenizer.load(path)
    assert loaded.vocab == tok.vocab
    assert (loaded.level, loaded.num_tokens, loaded.min_freq) == ("word", 8, 1)
    probe = ["a b c d e", "café naïve", "unseen"]
    assert loaded.texts_to_sequences(probe) == tok.texts_to_sequences(probe)


def test_char_level_round_trip(tmp_path: Path) -> None:
    tok = Tokenizer(level="char", min_freq=2).fit(["hello world", "hold"])
    loaded = Tokenizer.load(tok.save(tmp_path / "t.json"))
    assert loaded.level == "char" and loaded.min_freq == 2
    assert loaded.vocab == tok.vocab
    assert loaded.texts_to_sequences(["low"]) == tok.texts_to_sequences(["low"])


@pytest.mark.parametrize("vocab", [["a", "b"], [PAD, UNK, "a", "a"], [UNK, PAD]])
def test_bad_vocab_rejected(vocab: list[str]) -> None:
    with pytest.raises(ValueError, match="vocab must start with"):
        Tokenizer(vocab=vocab)


# --- LabelEncoder ---------------------------------------------------------------------------


def test_label_encoder_sorted_classes() -> None:
    enc = LabelEncoder().fit(["World", "Sports", "Business", "World", "Sci/Tech"])
    assert enc.classes == ["Business", "Sci/Tech", "Sports", "World"]
    assert len(enc) == 4
    assert enc.index == {"Business": 0, "Sci/Tech": 1, "Sports": 2, "World": 3}


def test_label_encoder_encode_decode() -> None:
    labels = ["World", "Sports", "World", "Business"]
    enc = LabelEncoder().fit(labels)
    ids = enc.encode(labels)
    assert ids == [2, 1, 2, 0]
    assert enc.decode(ids) == labels
    assert enc.encode([]) == []


def test_label_encoder_unknown_label_names_known_ones() -> None:
    enc = LabelEncoder().fit(["World", "Sports"])
    with pytest.raises(UserError) as err:
        enc.encode(["World", "Politics", "Tech", "Politics"])
    message = str(err.value)
    assert "unknown label(s) 'Politics', 'Tech'" in message
    assert "'Sports', 'World'" in message
    assert enc.unknown(["Tech", "World", "Politics"]) == ["Politics", "Tech"]


def test_label_encoder_refit_replaces_classes() -> None:
    enc = LabelEncoder().fit(["b", "a"])
    enc.fit(["z"])
    assert enc.classes == ["z"]
    assert enc.index == {"z": 0}


def test_label_encoder_save_load(tmp_path: Path) -> None:
    enc = LabelEncoder().fit(["World", "Sci/Tech", "Sports", "Business"])
    path = enc.save(tmp_path / "labels.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {"classes": enc.classes}
    loaded = LabelEncoder.load(path)
    assert loaded.classes == enc.classes
    assert loaded.encode(["Sports", "World"]) == enc.encode(["Sports", "World"])
