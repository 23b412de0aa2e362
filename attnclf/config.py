"""Typed configuration: YAML validated into dataclasses, with dotted `--set` overrides."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from attnclf.errors import UserError

NEWS_URL = (
    "https://raw.githubusercontent.com/GokuMohandas/Made-With-ML/"
    "05d62c1a78a071794df7c945d8b42c3fbf3fdc96/datasets/news.csv"
)
NEWS_CHECKSUM = "gitsha1:3f527ab52dd7d14d4f80cdf8ca72ea8d71089367"


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict:
    """Field metadata that bounds a number (closed unless `lo_open`)."""
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


@dataclass
class DataConfig:
    """Where the labelled CSV lives and how to read and split it."""

    path: str = "data/news.csv"
    url: str | None = NEWS_URL
    checksum: str | None = NEWS_CHECKSUM
    format: Literal["auto", "header", "ag_news"] = "auto"
    text_column: str = "title"
    label_column: str = "category"
    use_description: bool = False
    train_size: float = field(default=0.7, metadata=_range(0, 1, lo_open=True))
    val_size: float = field(default=0.15, metadata=_range(0, 1, lo_open=True))
    test_size: float = field(default=0.15, metadata=_range(0, 1, lo_open=True))
    split_seed: int = 1234


@dataclass
class PreprocessConfig:
    """The lesson's cleaning steps, each one switchable."""

    lowercase: bool = True
    stopwords: bool = True
    remove_parentheses: bool = True
    space_punctuation: bool = True
    remove_non_alphanumeric: bool = True


@dataclass
class TokenizerConfig:
    """Vocabulary policy and sequence length."""

    level: Literal["word", "char"] = "word"
    num_tokens: int | None = field(default=None, metadata=_range(1))
    min_freq: int = field(default=1, metadata=_range(1))
    max_seq_len: int = field(default=64, metadata=_range(1))
    # pad every batch to at least this many positions (null: to its longest text); with
    # model.pack_sequences false it fixes how far the RNN runs past each text's end
    pad_to: int | None = field(default=None, metadata=_range(1))


@dataclass
class ModelConfig:
    """Embedding, RNN, attention and classifier head sizes."""

    embedding_dim: int = field(default=100, metadata=_range(1))
    embedding_dropout: float = field(default=0.0, metadata=_range(0, 1))
    # std of the word embeddings' normal init: 1.0 is PyTorch's (the lesson's); with ~0.1 the
    # few Adam steps a rare word gets outweigh its random start
    embedding_init_std: float = field(default=1.0, metadata=_range(0, lo_open=True))
    cell: Literal["rnn", "gru", "lstm"] = "gru"
    rnn_hidden_dim: int = field(default=128, metadata=_range(1))
    num_layers: int = field(default=1, metadata=_range(1))
    bidirectional: bool = True
    attention: Literal["linear", "additive"] = "additive"
    attention_dim: int = field(default=64, metadata=_range(1))
    mask_padding: bool = True
    # false: the RNN also runs over the padding (the lesson's nn.RNN on padded batches), so
    # outputs past a text's end depend on its padding: set tokenizer.pad_to to fix it
    pack_sequences: bool = True
    # probability that a token is replaced by <UNK> on the RNN path while training
    word_dropout: float = field(default=0.0, metadata=_range(0, 1))
    # linear path over word 1..n-grams added to the logits (0 turns it off)
    wide_ngrams: int = field(default=0, metadata=_range(0))
    # hash buckets for the 2..n-grams of the wide and naive Bayes paths
    wide_buckets: int = field(default=262_144, metadata=_range(1))
    # weight of a multinomial naive Bayes over word 1..n-grams, fitted in closed form on the
    # training split and mixed into the predicted probabilities (0 turns it off)
    naive_bayes: float = field(default=0.0, metadata=_range(0, 1))
    naive_bayes_ngrams: int = field(default=2, metadata=_range(1))
    naive_bayes_alpha: float = field(default=1.0, metadata=_range(0, lo_open=True))  # smoothing
    hidden_dim: int = field(default=100, metadata=_range(1))
    dropout: float = field(default=0.3, metadata=_range(0, 1))


@dataclass
class TrainConfig:
    """Optimiser, schedule, early stopping, batching and device."""

    epochs: int = field(default=20, metadata=_range(1))
    batch_size: int = field(default=64, metadata=_range(1))
    eval_batch_size: int = field(default=512, metadata=_range(1))
    lr: float = field(default=1e-3, metadata=_range(0, lo_open=True))
    wide_lr: float = field(default=0.02, metadata=_range(0, lo_open=True))  # wide path's lr
    weight_decay: float = field(default=0.0, metadata=_range(0))
    label_smoothing: float = field(default=0.0, metadata=_range(0, 1))
    patience: int = field(default=3, metadata=_range(1))
    lr_factor: float = field(default=0.1, metadata=_range(0, 1, lo_open=True))
    lr_patience: int = field(default=1, metadata=_range(0))
    grad_clip: float | None = field(default=None, metadata=_range(0, lo_open=True))
    class_weights: Literal["none", "inverse"] = "none"
    bucketing: bool = True
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    amp: bool = True
    seed: int = 1234
    num_threads: int | None = field(default=None, metadata=_range(1))


@dataclass
class Config:
    """The whole configuration of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, ready for YAML."""
        return dataclasses.asdict(self)


_SCALAR_CHECKS = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    type(None): lambda v: v is None,
}


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    """Readable name of an annotation, for error messages."""
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if _is_union(tp):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else tp.__name__


def _is_union(tp: Any) -> bool:
    """True for `X | Y` and `Optional[X]` annotations."""
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against annotation `tp`, returning it (ints are accepted for floats)."""
    if _is_union(tp):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except UserError:
                continue
        raise UserError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if typing.get_origin(tp) is Literal:
        if value in typing.get_args(tp):
            return value
        raise UserError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if tp is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads exponents without a dot (1e-3) as strings
    if _SCALAR_CHECKS[tp](value):
        if tp is float and not math.isfinite(value):
            raise UserError(f"{where} must be a finite number, got {value!r}")
        return float(value) if tp is float else value
    raise UserError(f"{where} must be {_type_name(tp)}, got {value!r}")


def _check_range(value: Any, meta: dict, where: str) -> None:
    """Raise if a number lies outside the field's declared range."""
    if value is None or "lo" not in meta:
        return
    lo, hi, lo_open = meta["lo"], meta["hi"], meta["lo_open"]
    if lo is not None and (value <= lo if lo_open else value < lo):
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise UserError(f"{where} must be {bound}, got {value!r}")
    if hi is not None and value > hi:
        raise UserError(f"{where} must be <= {hi}, got {value!r}")


def _build(cls: type, raw: Any, where: str) -> Any:
    """Validate a mapping into dataclass `cls`, rejecting unknown keys."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise UserError(
            f"unknown key {where}.{unknown[0]}; valid keys in {where}: {', '.join(fields)}"
        )
    values = {}
    for name, value in raw.items():
        key = f"{where}.{name}"
        if dataclasses.is_dataclass(hints[name]):
            values[name] = _build(hints[name], value, key)
        else:
            values[name] = _coerce(value, hints[name], key)
            _check_range(values[name], fields[name].metadata, key)
    return cls(**values)


def _check_consistency(cfg: Config) -> None:
    """Cross-field rules that no single field can check."""
    total = cfg.data.train_size + cfg.data.val_size + cfg.data.test_size
    if abs(total - 1.0) > 1e-6:
        raise UserError(
            f"data.train_size + data.val_size + data.test_size must sum to 1, got {total:g}"
        )


def from_dict(raw: Any) -> Config:
    """Validate a nested mapping (parsed YAML) into a `Config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError("a config must be a YAML mapping with sections such as data: and train:")
    hints = typing.get_type_hints(Config)
    unknown = sorted(set(raw) - set(hints), key=str)
    if unknown:
        raise UserError(
            f"unknown config section {unknown[0]!r}; valid sections: {', '.join(hints)}"
        )
    cfg = Config(**{name: _build(hints[name], raw.get(name), name) for name in hints})
    _check_consistency(cfg)
    return cfg


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split `section.key=value` into a key path and a YAML-parsed value."""
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise UserError(
            f"malformed --set {item!r}; use --set section.key=value, e.g. train.epochs=3"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    if isinstance(value, (dict, list)):
        value = text
    return parts, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of `raw` with each `section.key=value` override applied."""
    merged = {s: dict(v) if isinstance(v, dict) else v for s, v in (raw or {}).items()}
    for item in overrides:
        (section, key), value = parse_override(item)
        if merged.get(section) is None:
            merged[section] = {}
        if not isinstance(merged[section], dict):
            raise UserError(f"config section {section!r} must be a mapping")
        merged[section][key] = value
    return merged


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely, turning I/O and syntax problems into `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(
            f"config file not found: {p}; pass --config with a YAML file, e.g. configs/default.yaml"
        )
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"config file {p} is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"YAML syntax error in {p}{at}; fix the file and retry") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when `path` is None) and apply `--set` overrides."""
    raw = read_yaml(path) if path is not None else {}
    if raw is not None and not isinstance(raw, dict):
        raise UserError(
            f"config {path} must be a YAML mapping with sections such as data: and train:"
        )
    return from_dict(apply_overrides(raw or {}, overrides or []))


def dump_config(cfg: Config) -> str:
    """The fully resolved config as YAML text."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
