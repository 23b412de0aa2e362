"""Typed config: defaults, YAML files, `--set` overrides and every validation error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from attnclf.config import (
    Config,
    DataConfig,
    TrainConfig,
    dump_config,
    from_dict,
    load_config,
    parse_override,
)
from attnclf.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load() -> None:
    cfg = load_config()
    assert cfg == Config()
    assert cfg.train.lr == 1e-3
    assert cfg.data.train_size == 0.7 and cfg.data.val_size == 0.15
    assert cfg.tokenizer.num_tokens is None
    assert cfg.model.cell == "gru"


def test_yaml_file_overrides_only_given_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 3\n  lr: 0.01\nmodel:\n  cell: lstm\n")
    cfg = load_config(path)
    assert cfg.train.epochs == 3
    assert cfg.train.lr == 0.01
    assert cfg.model.cell == "lstm"
    assert cfg.train.batch_size == TrainConfig().batch_size
    assert cfg.data == DataConfig()


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n")) == Config()


def test_set_overrides_beat_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 3\n")
    cfg = load_config(
        path,
        [
            "train.epochs=7",
            "train.lr=0.05",
            "tokenizer.num_tokens=500",
            "model.bidirectional=false",
            "data.path=some/file.csv",
        ],
    )
    assert cfg.train.epochs == 7
    assert cfg.train.lr == 0.05
    assert cfg.tokenizer.num_tokens == 500
    assert cfg.model.bidirectional is False
    assert cfg.data.path == "some/file.csv"


def test_set_null_clears_optional_values() -> None:
    cfg = load_config(None, ["data.checksum=null", "data.url=~", "tokenizer.num_tokens=null"])
    assert cfg.data.checksum is None
    assert cfg.data.url is None
    assert cfg.tokenizer.num_tokens is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.001", 1e-3), ("1e-3", 1e-3), ("5E-4", 5e-4), ("1.5e-2", 0.015), ("2", 2.0)],
)
def test_set_floats_in_any_notation(text: str, expected: float) -> None:
    lr = load_config(None, [f"train.lr={text}"]).train.lr
    assert isinstance(lr, float)
    assert lr == pytest.approx(expected)


def test_scientific_notation_in_yaml_file(tmp_path: Path) -> None:
    # PyYAML reads `1e-3` (no dot) as a string; the config must still accept it.
    cfg = load_config(write(tmp_path, "train:\n  lr: 1e-3\n  grad_clip: 1e1\n"))
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.train.grad_clip == pytest.approx(10.0)


def test_int_accepted_for_float_but_not_float_for_int() -> None:
    assert load_config(None, ["train.weight_decay=0"]).train.weight_decay == 0.0
    with pytest.raises(UserError, match=r"train\.epochs must be int, got 2\.5"):
        load_config(None, ["train.epochs=2.5"])


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(UserError) as err:
        load_config(None, ["train.epoch=3"])
    message = str(err.value)
    assert "unknown key train.epoch" in message
    for key in ("epochs", "batch_size", "lr", "patience", "seed"):
        assert key in message


def test_unknown_key_in_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown key model\.hidden.*embedding_dim"):
        load_config(write(tmp_path, "model:\n  hidden: 3\n"))


def test_unknown_section() -> None:
    with pytest.raises(UserError, match=r"unknown config section 'optimizer'.*data.*train"):
        load_config(None, ["optimizer.lr=0.1"])


def test_non_string_keys_do_not_crash(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown key data"):
        load_config(write(tmp_path, "data:\n  1: x\n  foo: y\n"))


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("train.epochs=three", r"train\.epochs must be int, got 'three'"),
        ("train.bucketing=maybe", r"train\.bucketing must be bool"),
        ("model.cell=transformer", r"model\.cell must be one of 'rnn', 'gru', 'lstm'"),
        ("train.lr=fast", r"train\.lr must be float"),
        ("train.epochs=true", r"train\.epochs must be int, got True"),
        (
            "data.text_column=null",
            r"data\.text_column must be str, got null \(no value\); fix it in the config file "
            r"or with --set data\.text_column=VALUE",
        ),
        ("tokenizer.num_tokens=many", r"tokenizer\.num_tokens must be int or null"),
    ],
)
def test_wrong_type(override: str, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("train.lr=-0.1", r"train\.lr must be > 0"),
        ("train.lr=0", r"train\.lr must be > 0"),
        ("train.epochs=0", r"train\.epochs must be >= 1, got 0"),
        ("model.dropout=1.5", r"model\.dropout must be <= 1"),
        ("train.batch_size=-4", r"train\.batch_size must be >= 1"),
        ("tokenizer.max_seq_len=0", r"tokenizer\.max_seq_len must be >= 1"),
        ("train.lr=.nan", r"train\.lr must be a finite number"),
        ("train.grad_clip=.inf", r"train\.grad_clip must be"),
    ],
)
def test_out_of_range(override: str, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        load_config(None, [override])


def test_range_edges_accepted() -> None:
    cfg = load_config(None, ["model.dropout=0", "model.embedding_dropout=1", "train.epochs=1"])
    assert cfg.model.dropout == 0.0 and cfg.train.epochs == 1


def test_splits_must_sum_to_one() -> None:
    with pytest.raises(UserError, match=r"must sum to 1, got 1\.1"):
        load_config(None, ["data.train_size=0.8"])
    cfg = load_config(None, ["data.train_size=0.8", "data.val_size=0.1", "data.test_size=0.1"])
    assert cfg.data.train_size == 0.8


@pytest.mark.parametrize(
    "item", ["train.epochs", "epochs=3", "train.epochs.x=3", ".epochs=3", "=3"]
)
def test_malformed_set(item: str) -> None:
    with pytest.raises(UserError, match=r"malformed --set.*section\.key=value"):
        load_config(None, [item])


def test_parse_override_values() -> None:
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override("data.checksum=null") == (["data", "checksum"], None)
    assert parse_override("data.checksum=") == (["data", "checksum"], None)
    assert parse_override("data.path=a=b.csv") == (["data", "path"], "a=b.csv")
    # flow collections stay text instead of becoming lists
    assert parse_override("data.path=[x]") == (["data", "path"], "[x]")


def test_yaml_syntax_error_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 3\n  lr: [0.1\nmodel:\n  cell: gru\n")
    with pytest.raises(UserError, match=r"YAML syntax error in .*cfg\.yaml at line \d+") as err:
        load_config(path)
    assert "line 4" in str(err.value)


def test_yaml_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="must be a YAML mapping"):
        load_config(write(tmp_path, "- train\n- data\n"))


@pytest.mark.parametrize("section", ["5", "[1, 2]", "text"])
def test_section_not_a_mapping(tmp_path: Path, section: str) -> None:
    path = write(tmp_path, f"data: {section}\n")
    with pytest.raises(UserError, match="data must be a mapping"):
        load_config(path)
    with pytest.raises(UserError, match="section 'data' must be a mapping"):
        load_config(path, ["data.path=x.csv"])


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"config file not found: .*nope\.yaml.*--config"):
        load_config(tmp_path / "nope.yaml")


def test_non_utf8_config_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("data:\n  path: caf\xe9.csv\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_config(path)


SHIPPED = {
    "default": ROOT / "configs" / "default.yaml",
    "ag_news": ROOT / "configs" / "ag_news.yaml",
    "ag_news_description": ROOT / "configs" / "ag_news_description.yaml",
    "lesson": ROOT / "configs" / "lesson.yaml",
    "smoke": ROOT / "tests" / "smoke.yaml",
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name: str) -> None:
    path = SHIPPED[name]
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg = load_config(path)
    for section, values in raw.items():
        if section == "extends":
            continue
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"{section}.{key}"


def test_lesson_config_is_the_lesson_recipe() -> None:
    cfg = load_config(ROOT / "configs" / "lesson.yaml")
    assert cfg.model.cell == "rnn"
    assert cfg.model.attention == "linear"
    assert cfg.tokenizer.num_tokens == 5000
    assert not cfg.model.pack_sequences and not cfg.model.mask_padding  # nn.RNN over padding
    assert (cfg.data.train_size, cfg.data.val_size, cfg.data.test_size) == (0.7, 0.15, 0.15)


@pytest.mark.parametrize(
    "old, new",
    [
        ("configs/seed.yaml", "configs/lesson.yaml"),
        ("configs/space.yaml", "configs/spaces/default.yaml"),
        ("configs/smoke.yaml", "tests/smoke.yaml"),
    ],
)
def test_a_moved_config_names_its_new_place(tmp_path: Path, old: str, new: str) -> None:
    with pytest.raises(UserError) as err:
        load_config(tmp_path / old)
    message = str(err.value)
    assert "\n" not in message and "config file not found" in message
    assert f"moved to {new}: use {tmp_path / new}" in message


# What each shipped AG News config resolved to when it still wrote out default.yaml's keys:
# default.yaml with these overrides. The overlays must keep resolving to exactly this.
AG_NEWS_SETS = [
    "data.path=data/ag_news_train.csv",
    "data.url=null",
    "preprocess.remove_parentheses=false",
    "model.naive_bayes=0.4",
]
OVERLAYS = {
    "ag_news": [
        *AG_NEWS_SETS,
        "data.augment_with_description=true",
        "tokenizer.max_seq_len=32",
        "model.rnn_hidden_dim=64",
        "model.wide_ngrams=0",
        "train.epochs=3",
        "train.schedule=linear",
        "train.batch_size=256",
        "train.lr=0.006",
    ],
    "ag_news_description": [
        *AG_NEWS_SETS,
        "data.use_description=true",
        "model.embedding_init=normal",
        "model.wide_ngrams=0",
    ],
}


@pytest.mark.parametrize("name", OVERLAYS)
def test_ag_news_overlays_resolve_to_their_old_values(name: str) -> None:
    cfg = load_config(SHIPPED[name])
    assert cfg == load_config(SHIPPED["default"], OVERLAYS[name])
    assert "extends" in yaml.safe_load(SHIPPED[name].read_text(encoding="utf-8"))
    # the values the file wrote out before it became an overlay (default.yaml's, at the time)
    m, t = cfg.model, cfg.train
    assert (m.embedding_dim, m.embedding_init_std, m.embedding_dropout, m.word_dropout) == (
        100,
        0.1,
        0.5,
        0.25,
    )
    assert (m.cell, m.bidirectional, m.attention, m.attention_dim) == ("gru", True, "additive", 64)
    assert (m.wide_ngrams, m.wide_buckets, m.naive_bayes, m.naive_bayes_alpha) == (
        0,
        2_097_152,
        0.4,
        0.5,
    )
    assert (m.hidden_dim, m.dropout, m.temperature) == (100, 0.5, "auto")
    assert (t.label_smoothing, t.patience, t.lr_patience) == (0.1, 3, 1)
    assert cfg.preprocess.remove_parentheses is False and cfg.tokenizer.level == "word"
    assert (cfg.data.path, cfg.data.url) == ("data/ag_news_train.csv", None)


def test_extends_chain_merges_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "model:\n  cell: lstm\n  dropout: 0.2\ntrain:\n  epochs: 7\n", "base.yaml")
    (tmp_path / "sub").mkdir()
    write(tmp_path, "extends: ../base.yaml\nmodel:\n  dropout: 0.4\n", "sub/mid.yaml")
    top = write(tmp_path, "extends: mid.yaml\ntrain:\n  lr: 0.01\npreprocess:\n", "sub/top.yaml")
    cfg = load_config(top, ["train.epochs=2"])
    assert (cfg.model.cell, cfg.model.dropout) == ("lstm", 0.4)  # the overlay wins, key by key
    assert (cfg.train.epochs, cfg.train.lr) == (2, 0.01)  # and --set wins over both
    assert cfg.preprocess == Config().preprocess  # an empty section keeps the base's
    text = dump_config(cfg)
    assert "extends" not in text and from_dict(yaml.safe_load(text)) == cfg


def test_extends_cycle_is_one_line_naming_the_file(tmp_path: Path) -> None:
    a = write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(
        UserError,
        match=r"chain of config .*a\.yaml is a cycle .*remove the `extends:` line of .*b\.yaml",
    ) as err:
        load_config(a)
    assert "\n" not in str(err.value)
    me = write(tmp_path, "extends: me.yaml\n", "me.yaml")
    with pytest.raises(UserError, match="is a cycle"):
        load_config(me)


def test_extends_a_missing_file_is_one_line_naming_both(tmp_path: Path) -> None:
    path = write(tmp_path, "extends: nope.yaml\ntrain:\n  epochs: 2\n")
    with pytest.raises(UserError, match=r"cfg\.yaml extends nope\.yaml, but .*nope\.yaml") as err:
        load_config(path)
    assert "\n" not in str(err.value) and "fix `extends:` in" in str(err.value)
    (tmp_path / "configs").mkdir()
    moved = write(tmp_path, "extends: seed.yaml\n", "configs/old.yaml")
    with pytest.raises(UserError, match=r"configs/seed\.yaml moved to configs/lesson\.yaml"):
        load_config(moved)


@pytest.mark.parametrize("value", ["", "[a.yaml]", "3", "null"])
def test_extends_must_be_a_path(tmp_path: Path, value: str) -> None:
    with pytest.raises(UserError, match=r"extends in .* must be the path of a config file"):
        load_config(write(tmp_path, f"extends: {value}\n"))


def test_an_overlay_is_validated_like_any_config(tmp_path: Path) -> None:
    write(tmp_path, "model:\n  cell: gru\n", "base.yaml")
    path = write(tmp_path, "extends: base.yaml\nmodel:\n  hiden_dim: 3\n")
    with pytest.raises(UserError, match=r"unknown key model\.hiden_dim; valid keys in model: "):
        load_config(path)
    path = write(tmp_path, "extends: base.yaml\nmodel:\n  dropout: 2\n")
    with pytest.raises(UserError, match=r"model\.dropout must be <= 1"):
        load_config(path)
    path = write(tmp_path, "extends: base.yaml\nmodel: 5\n")
    with pytest.raises(UserError, match="model must be a mapping"):
        load_config(path)


def test_a_run_folder_config_never_extends(tmp_path: Path) -> None:
    # the run folder's config.yaml is dump_config's fully resolved config; read back, a stray
    # `extends:` is an unknown section, not a file to follow
    path = write(tmp_path, "extends: default.yaml\n", "config.yaml")
    with pytest.raises(UserError, match="unknown config section 'extends'"):
        from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_dump_config_round_trip(tmp_path: Path) -> None:
    cfg = load_config(
        ROOT / "configs" / "lesson.yaml", ["train.lr=3e-4", "data.checksum=null", "train.epochs=2"]
    )
    text = dump_config(cfg)
    assert from_dict(yaml.safe_load(text)) == cfg
    saved = write(tmp_path, text, "resolved.yaml")
    assert load_config(saved) == cfg


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(UserError, match="must be a YAML mapping"):
        from_dict(["train"])
    assert from_dict(None) == Config()
