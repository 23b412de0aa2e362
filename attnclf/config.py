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


def _field(
    default: Any,
    help: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
) -> Any:
    """A config field with its description and, for numbers, a range (closed unless `lo_open`)."""
    return field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "lo_open": lo_open})


@dataclass
class DataConfig:
    """Where the labelled CSV lives and how to read and split it."""

    path: str = _field(
        "data/news.csv",
        "labelled data file (CSV, TSV, JSON Lines or Parquet, by extension); downloaded from "
        "`data.url` when missing",
    )
    val_path: str | None = _field(
        None,
        "a labelled file that is the validation split (same layouts as `data.path`); the train "
        "file is then not split for validation. `null`: split it off the train file",
    )
    test_path: str | None = _field(
        None,
        "a labelled file that is the test split (same layouts as `data.path`); the train file "
        "is then not split for testing. `null`: split it off the train file",
    )
    url: str | None = _field(NEWS_URL, "download source (the pinned Made-With-ML news.csv)")
    checksum: str | None = _field(
        NEWS_CHECKSUM, "`algo:hex` checksum of the download (md5, sha1, sha256, gitsha1)"
    )
    format: Literal["auto", "header", "ag_news"] = _field(
        "auto", "`auto`, `header` (a headered CSV) or `ag_news` (class index, title, description)"
    )
    text_column: str = _field("title", "text column of a headered CSV")
    label_column: str = _field("category", "label column of a headered CSV")
    use_description: bool = _field(False, "AG News layout: the text is title + description")
    train_size: float = _field(
        0.7, "stratified split fractions (the three sum to 1)", 0, 1, lo_open=True
    )
    val_size: float = _field(0.15, "validation fraction", 0, 1, lo_open=True)
    test_size: float = _field(0.15, "test fraction", 0, 1, lo_open=True)
    holdout_size: float = _field(
        0.1,
        "when one of `val_path`, `test_path` is given, the fraction of the train file split "
        "off as the other split (Ludwig's and Kim 2014's 10%: small data keeps more rows to "
        "train on)",
        0,
        1,
        lo_open=True,
    )
    split_seed: int = _field(1234, "seed of the split")
    train_rows: int | None = _field(
        None,
        "train on a stratified subsample of this many rows of the train split (seeded by "
        "`data.split_seed`; val and test unchanged); `null`: all of it",
        2,
    )
    augment_with_description: bool = _field(
        False,
        "AG News layout: each training row's description is also a training text of its class "
        "(val and test keep their texts)",
    )


AUTO = "auto"


@dataclass
class PreprocessConfig:
    """The lesson's cleaning steps, each switchable; `auto` lets the data choose (on the
    validation split, by a naive Bayes' accuracy; see `attnclf.encoding.preprocess_search`)."""

    lowercase: bool | Literal["auto"] = _field(AUTO, "lowercase (`auto`: chosen from the data)")
    stopwords: bool | Literal["auto"] = _field(
        AUTO, "drop NLTK English stopwords (`auto`: chosen from the data)"
    )
    remove_parentheses: bool | Literal["auto"] = _field(
        AUTO,
        "drop text in parentheses (source tags such as `(Reuters)`; `auto`: chosen from the data)",
    )
    space_punctuation: bool = _field(True, "put spaces around punctuation")
    remove_non_alphanumeric: bool | Literal["auto"] = _field(
        AUTO,
        "replace characters other than ASCII letters and digits (punctuation) with spaces "
        "(`auto`: chosen from the data)",
    )

    @classmethod
    def lesson(cls, **changes: bool) -> PreprocessConfig:
        """The Made-With-ML lesson's cleaning (every step on), with `changes`."""
        steps = {f.name: True for f in dataclasses.fields(cls)}
        return cls(**{**steps, **changes})

    def auto_keys(self) -> list[str]:
        """The steps still to be chosen from the data."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) == AUTO]


@dataclass
class TokenizerConfig:
    """Vocabulary policy and sequence length."""

    level: Literal["word", "char"] = _field("word", "`word` or `char` tokens")
    num_tokens: int | None = _field(
        None, "keep only the N most frequent tokens (plus `<PAD>`, `<UNK>`); `null`: all", 1
    )
    min_freq: int = _field(1, "drop tokens seen fewer times in the training split", 1)
    max_seq_len: int = _field(64, "longer texts are truncated to their first tokens", 1)
    pad_to: int | None = _field(
        None,
        "pad every batch to at least this width (`null`: its longest text); with "
        "`model.pack_sequences` false it fixes how far the RNN runs past each text's end",
        1,
    )


@dataclass
class ModelConfig:
    """Embedding, RNN, attention and classifier head sizes, and the n-gram paths."""

    embedding_dim: int = _field(100, "embedding size", 1)
    pretrained_embeddings: str | None = _field(
        None,
        "word vectors (word2vec or GloVe text format, `embedding_dim` wide) that initialise the "
        "embeddings of the words they hold; `null`: none",
    )
    embedding_init: Literal["normal", "ppmi"] = _field(
        "normal",
        "`normal`: random (std `embedding_init_std`); `ppmi`: in-domain word vectors from the "
        "training texts (PPMI + SVD of co-occurrence within 5 words, Levy et al. 2015) at the "
        "random start's length; `pretrained_embeddings` then overrides the words its file holds",
    )
    freeze_embeddings: bool = _field(
        False, "keep the embeddings fixed while training (with `ppmi` or `pretrained_embeddings`)"
    )
    embedding_dropout: float = _field(0.0, "dropout on the embeddings", 0, 1)
    embedding_init_std: float = _field(
        1.0,
        "std of the word embeddings' normal init: 1.0 is PyTorch's (the lesson's); with ~0.1 "
        "the few Adam steps a rare word gets outweigh its random start",
        0,
        lo_open=True,
    )
    deep: bool = _field(
        True,
        "the deep path (embedding, RNN, attention, head); `false`: the wide path (and naive "
        "Bayes) alone, an ablation (attention is then uniform)",
    )
    cell: Literal["rnn", "gru", "lstm"] = _field("gru", "`rnn`, `gru` or `lstm`")
    rnn_hidden_dim: int = _field(128, "RNN hidden size (per direction)", 1)
    num_layers: int = _field(1, "stacked RNN layers", 1)
    bidirectional: bool = _field(True, "run the RNN in both directions")
    attention: Literal["linear", "additive"] = _field(
        "additive", "`linear` (`softmax(w . h + b)`) or `additive` (`softmax(u . tanh(W h + b))`)"
    )
    attention_dim: int = _field(64, "additive attention size", 1)
    mask_padding: bool = _field(True, "padding gets exactly zero attention")
    pack_sequences: bool = _field(
        True,
        "`false`: the RNN also runs over the padding (the lesson's `nn.RNN` on padded "
        "batches), so outputs depend on it: pair with `tokenizer.pad_to`",
    )
    word_dropout: float = _field(
        0.0, "chance that a token reaches the RNN as `<UNK>` while training", 0, 1
    )
    wide_ngrams: int = _field(
        0,
        "the wide path: a linear model over each text's words and hashed word 2..n-grams, "
        "added to the RNN's logits (Wide & Deep; fastText's linear model). 0 = off, 2 = words "
        "+ bigrams",
        0,
    )
    wide_buckets: int = _field(
        262_144, "hash buckets for the 2..n-grams of the wide and naive Bayes paths", 1
    )
    naive_bayes: float | Literal["auto"] = _field(
        0.0,
        "weight `w` of the naive Bayes path: a multinomial naive Bayes over each text's words "
        "and hashed word 2..n-grams, fitted in closed form on the training split and saved "
        "with the weights. The model's probabilities are `(1 - w) * network + w * naive "
        "Bayes`; the network trains alone. 0 = off; `auto`: trained with 0.4, then the weight "
        "(0-1 in steps of 0.1) with the lowest validation loss is kept (0 drops the path)",
        0,
        1,
    )
    naive_bayes_ngrams: int = _field(2, "naive Bayes' n-gram order (2 = words + bigrams)", 1)
    naive_bayes_alpha: float = _field(1.0, "naive Bayes' additive smoothing", 0, lo_open=True)
    hidden_dim: int = _field(100, "hidden size of the classifier head", 1)
    dropout: float = _field(0.3, "dropout in the classifier head (and between RNN layers)", 0, 1)
    temperature: float | Literal["auto"] = _field(
        AUTO,
        "the model's scores are divided by it before the softmax (temperature scaling, Guo et "
        "al. 2017: calibrated probabilities, the same labels); `auto`: the one with the lowest "
        "validation loss, chosen after training",
        0,
        lo_open=True,
    )


@dataclass
class TrainConfig:
    """Optimiser, schedule, early stopping, batching and device."""

    epochs: int = _field(20, "most epochs to train", 1)
    batch_size: int = _field(64, "training batch size (per process under torchrun)", 1)
    eval_batch_size: int = _field(512, "batch size of validation and test passes", 1)
    lr: float = _field(1e-3, "Adam learning rate", 0, lo_open=True)
    wide_lr: float = _field(
        0.02,
        "Adam learning rate of the wide path (a linear model over sparse features needs "
        "larger steps)",
        0,
        lo_open=True,
    )
    weight_decay: float = _field(
        0.0, "Adam weight decay of the deep path (the wide path's lazy steps have none)", 0
    )
    label_smoothing: float = _field(0.0, "label smoothing of the training loss", 0, 1)
    patience: int = _field(
        3, "early stopping: epochs without a better validation loss; the best epoch is kept", 1
    )
    stop_on: Literal["model", "network"] = _field(
        "model",
        "the validation loss behind early stopping and the plateau schedule: `model`, the model's "
        "own predictions (naive Bayes mix included, what `predict` serves), or `network`, the "
        "network alone (what the gradient trains); the same without naive Bayes",
    )
    schedule: Literal["plateau", "linear"] = _field(
        "plateau",
        "learning-rate schedule: `plateau` (ReduceLROnPlateau on the validation loss) or "
        "`linear` (decay every step to 0 at the end of `epochs`, as fastText does)",
    )
    lr_factor: float = _field(0.1, "ReduceLROnPlateau: factor", 0, 1, lo_open=True)
    lr_patience: int = _field(1, "ReduceLROnPlateau: patience in epochs", 0)
    grad_clip: float | None = _field(
        None, "max gradient norm of the deep path (`null`: no clipping)", 0, lo_open=True
    )
    class_weights: Literal["none", "inverse"] = _field(
        "none", "`none` or `inverse` (each class's loss weighted by 1/count)"
    )
    bucketing: bool = _field(True, "length-bucketed batches (less padding)")
    device: Literal["auto", "cpu", "cuda", "mps"] = _field(
        "auto", "`auto` (CUDA, then MPS, then CPU), `cpu`, `cuda`, `mps`"
    )
    amp: bool = _field(True, "bf16 autocast on CUDA")
    seed: int = _field(1234, "seed of initialisation, dropout and batch order")
    num_threads: int | None = _field(None, "CPU threads (`null`: torch's default)", 1)


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


def reference() -> list[tuple[str, Any, str]]:
    """Every config key (`section.key`) with its built-in default and its description."""
    hints = typing.get_type_hints(Config)
    return [
        (f"{section}.{f.name}", f.default, f.metadata["help"])
        for section in hints
        for f in dataclasses.fields(hints[section])
    ]


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


def _type_error(where: str, tp: Any, value: Any) -> UserError:
    """A value of the wrong type: what was expected, what came, and where to fix it."""
    got = "null (no value)" if value is None else repr(value)
    return UserError(
        f"{where} must be {_type_name(tp)}, got {got}; fix it in the config file or with "
        f"--set {where}=VALUE"
    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against annotation `tp`, returning it (ints are accepted for floats)."""
    if _is_union(tp):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except UserError:
                continue
        raise _type_error(where, tp, value)
    if typing.get_origin(tp) is Literal:
        if value in typing.get_args(tp):
            return value
        raise _type_error(where, tp, value)
    if tp is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads exponents without a dot (1e-3) as strings
    if _SCALAR_CHECKS[tp](value):
        if tp is float and not math.isfinite(value):
            raise UserError(f"{where} must be a finite number, got {value!r}")
        return float(value) if tp is float else value
    raise _type_error(where, tp, value)


def _check_range(value: Any, meta: dict, where: str) -> None:
    """Raise if a number lies outside the field's declared range."""
    if value is None or isinstance(value, str):
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
    m = cfg.model
    if not m.deep and not m.wide_ngrams:
        raise UserError("model.deep=false needs a path that trains: set model.wide_ngrams")
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


def _key_field(key: str) -> tuple[dataclasses.Field, Any]:
    """The field of a `section.key` and its type; an unknown key is an error listing the valid."""
    hints = typing.get_type_hints(Config)
    section, _, name = key.partition(".")
    if section not in hints:
        raise UserError(f"unknown config key {key!r}; valid sections: {', '.join(hints)}")
    fields = {f.name: f for f in dataclasses.fields(hints[section])}
    if name not in fields:
        raise UserError(f"unknown key {key}; valid keys in {section}: {', '.join(fields)}")
    return fields[name], typing.get_type_hints(hints[section])[name]


def key_type(key: str) -> Any:
    """The type annotation of a `section.key` config key (an error names the valid keys)."""
    return _key_field(key)[1]


def check_value(key: str, value: Any) -> Any:
    """Validate one `section.key` value as a config would, and return it coerced."""
    f, tp = _key_field(key)
    value = _coerce(value, tp, key)
    _check_range(value, f.metadata, key)
    return value


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


# Files that moved, by their old place: loading the old path names the new one.
MOVED = {
    "configs/seed.yaml": "configs/lesson.yaml",
    "configs/smoke.yaml": "tests/smoke.yaml",
    "configs/space.yaml": "configs/spaces/default.yaml",
}

EXTENDS = "extends"


def _moved_hint(p: Path) -> str:
    """`; configs/x.yaml moved to ...: use ...` when `p` is where a shipped file used to be."""
    old = f"{p.parent.name}/{p.name}"
    if old not in MOVED:
        return ""
    return f"; {old} moved to {MOVED[old]}: use {p.parent.parent / MOVED[old]}"


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely, turning I/O and syntax problems into `UserError`."""
    p = Path(path)
    if not p.is_file():
        hint = _moved_hint(p) or "; pass --config with a YAML file, e.g. configs/default.yaml"
        raise UserError(f"config file not found: {p}{hint}")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"config file {p} is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"YAML syntax error in {p}{at}; fix the file and retry") from None


def merge_configs(base: dict, overlay: dict) -> dict:
    """`overlay` over `base`, section by section and key by key: the overlay's keys win, and a
    section the overlay leaves empty (`preprocess:` with nothing under it) keeps the base's."""
    merged = {s: dict(v) if isinstance(v, dict) else v for s, v in base.items()}
    for section, values in overlay.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        elif values is not None or section not in merged:
            merged[section] = dict(values) if isinstance(values, dict) else values
    return merged


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The raw mapping of a config file with its `extends:` chain resolved: `extends: other.yaml`
    (a path relative to the file) is read first and this file's keys are laid over it."""
    p = Path(path)
    raw = read_yaml(p)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"config {p} must be a YAML mapping with sections such as data: and train:")
    if EXTENDS not in raw:
        return raw
    raw = dict(raw)
    parent = raw.pop(EXTENDS)
    if not isinstance(parent, str) or not parent.strip():
        raise UserError(
            f"{EXTENDS} in {p} must be the path of a config file (relative to {p.parent}), "
            f"got {parent!r}; fix it in {p}"
        )
    chain = (*_chain, p.resolve())
    base_path = p.parent / parent
    if base_path.resolve() in chain:
        loop = " -> ".join(str(c) for c in (*_chain, p, base_path))
        first = _chain[0] if _chain else p
        raise UserError(
            f"the `{EXTENDS}:` chain of config {first} is a cycle ({loop}); remove the "
            f"`{EXTENDS}:` line of {p} (or another in the loop)"
        )
    if not base_path.is_file():
        raise UserError(
            f"config {p} extends {parent}, but {base_path} is not a file{_moved_hint(base_path)}; "
            f"fix `{EXTENDS}:` in {p} (a path relative to {p.parent})"
        )
    return merge_configs(read_config_file(base_path, chain), raw)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when `path` is None), resolving its `extends:` chain,
    and apply `--set` overrides."""
    raw = read_config_file(path) if path is not None else {}
    return from_dict(apply_overrides(raw, overrides or []))


def dump_config(cfg: Config) -> str:
    """The fully resolved config as YAML text."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
