"""Reliability and security: bad input, safe artifacts, crash-safe writes, interruption, resume.

Every bad input goes through the real CLI entry point and must give exit code 2 and one line on
stderr (`error: ...`) naming the problem and the fix, with nothing on disk changed. Training runs
are tiny (48 made-up titles, 2 epochs) and shared per module.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import write_news_csv

from attnclf import jsonio
from attnclf.config import load_config
from attnclf.errors import UserError
from attnclf.predict.torch_backend import Predictor
from attnclf.runfolder import CHECKPOINT, RunFolder
from attnclf.training.loop import Trainer
from attnclf.training.train import resume, train

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"
BASE = ["data.url=null", "train.epochs=2", "train.num_threads=1", "train.batch_size=8"]
EMPTY = "the text is empty after preprocessing"


def base_sets(data: Path, *extra: str) -> list[str]:
    """The module's training overrides as repeated `--set` options."""
    return [arg for item in (f"data.path={data}", *BASE, *extra) for arg in ("--set", item)]


def snapshot(root: Path) -> dict[str, object]:
    """Every path under `root` (hidden ones too): file bytes, symlink target, or 'dir'."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = path.read_bytes()
    return found


def assert_error(result, *fragments: str, quiet: bool = True) -> str:
    """Exit code 2, no traceback, and exactly one `error:` line on stderr with each fragment."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if quiet:
        assert result.stdout == ""
    return lines[0]


class Evil:
    """A pickle payload: unpickling it creates `marker` (it runs `open(marker, 'w')`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# The audit hook sees every file opened for writing; it records only while `root` is set.
_AUDIT: dict = {"root": None, "writes": [], "renames": []}


def _audit(event: str, args: tuple) -> None:
    root = _AUDIT["root"]
    if root is None:
        return
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if path.startswith(root) and args[2] & (os.O_WRONLY | os.O_RDWR):
            _AUDIT["writes"].append(Path(path))
    elif event == "os.rename" and os.fsdecode(args[0]).startswith(root):
        _AUDIT["renames"].append((Path(os.fsdecode(args[0])), Path(os.fsdecode(args[1]))))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The module's data and runs: `good`, its `twin` (same config, audited), `other` vocab."""
    sys.addaudithook(_audit)  # hooks cannot be removed; it is idle unless `root` is set
    tmp = tmp_path_factory.mktemp("reliability")
    data = write_news_csv(tmp / "news.csv")

    def cfg(*extra: str):
        return load_config(SMOKE, [f"data.path={data}", *BASE, *extra])

    good = train(cfg(), "smoke", tmp / "artifacts").run_dir
    _AUDIT.update(root=str(tmp / "twin"), writes=[], renames=[])
    try:
        twin = train(cfg(), "smoke", tmp / "twin").run_dir
    finally:
        audit = {"writes": _AUDIT["writes"], "renames": _AUDIT["renames"]}
        _AUDIT["root"] = None
    other = train(cfg("tokenizer.min_freq=1"), "other", tmp / "other").run_dir
    return SimpleNamespace(
        data=data, artifacts=tmp / "artifacts", good=good, twin=twin, other=other, audit=audit
    )


@pytest.fixture
def work(tmp_path: Path, runs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch folder (the working directory) holding a copy of the good artifacts folder."""
    shutil.copytree(runs.artifacts, tmp_path / "artifacts", symlinks=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- bad data -------------------------------------------------------------------------------


def _csv(text: str):
    """A case maker: a file with `text`."""
    return lambda good: text.encode()


def _lines_with(extra: bytes):
    """A case maker: the good file plus the `extra` bytes."""
    return lambda good: good + extra


DATA_CASES = {
    "missing": (None, ["data file not found", "data.path"]),
    "directory": ("dir", ["is a directory", "data.path"]),
    "empty": (_csv(""), ["is empty", "needs a header and labelled rows"]),
    "header only": (_csv("title,category\n"), ["no rows with both a text and a label"]),
    "missing column": (
        _csv("title\nTennis match\nStocks rally\n"),
        ["no column 'category'", "found columns: 'title'", "data.label_column"],
    ),
    "misnamed columns": (
        _csv("headline,topic\nTennis match,Sports\nStocks rally,Business\n"),
        ["no column 'title'", "found columns: 'headline', 'topic'", "data.text_column"],
    ),
    "semicolons": (
        lambda good: good.replace(b",", b";"),
        ["(is it comma-separated?)", "found columns: 'title;category'"],
    ),
    "latin-1 bytes": (
        _lines_with(b"Caf\xe9 opens,Business\n"),
        ["is not UTF-8 text", "re-save it as UTF-8"],
    ),
    "gzipped": (lambda good: gzip.compress(good, mtime=0), ["is not UTF-8 text"]),
    "empty after cleaning": (
        _csv("title,category\n" + "".join(f"The of and !!!,{'AB'[i % 2]}\n" for i in range(40))),
        ["every text", "empty after preprocessing", "--set preprocess.stopwords=false"],
    ),
    "single class": (
        _csv("title,category\n" + "".join(f"Tennis match {i},Sports\n" for i in range(40))),
        ["single class ('Sports')", "add rows of another class"],
    ),
    "class too small": (
        _lines_with(b"Rare thing one,Rare\nRare thing two,Rare\n"),
        ["too small to stratify", "'Rare' (2)", "add data or remove those rows"],
    ),
}


def _bad_data(work: Path, case: str, good: Path) -> Path:
    """Write the data file of a `DATA_CASES` case into `work`."""
    make = DATA_CASES[case][0]
    path = work / "bad.csv"
    if make == "dir":
        path.mkdir()
    elif make is not None:
        path.write_bytes(make(good.read_bytes()))
    return path


@pytest.mark.parametrize("command", ["train", "stats"])
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_one_clear_line_and_changes_nothing(
    case: str, command: str, work: Path, runs: SimpleNamespace, run_cli
) -> None:
    path = _bad_data(work, case, runs.data)
    before = snapshot(work)
    if command == "train":
        sets = ["--set", f"data.path={path}", "--set", "data.url=null"]
        result = run_cli("train", "-c", SMOKE, *sets, "-o", work / "artifacts")
        assert_error(result, *DATA_CASES[case][1])
        fresh = run_cli("train", "-c", SMOKE, *sets, "-o", work / "fresh")
        assert fresh.stderr == result.stderr
        assert not (work / "fresh").exists()  # no empty output folder either
    else:
        assert_error(run_cli("data", "stats", path, "-c", SMOKE), *DATA_CASES[case][1])
    assert snapshot(work) == before


def test_evaluate_with_bad_data_is_one_clear_line(work: Path, runs: SimpleNamespace, run_cli):
    path = _bad_data(work, "semicolons", runs.data)
    before = snapshot(work)
    result = run_cli("evaluate", "--run", runs.good, "--data", path)
    assert_error(result, "is it comma-separated?")
    assert snapshot(work) == before


# --- bad config -----------------------------------------------------------------------------

CONFIG_FILE_CASES = {
    "yaml syntax": ("train:\n  epochs: [1\n", ["YAML syntax error", "at line 3", "fix the file"]),
    "unknown key": ("train:\n  epochz: 3\n", ["unknown key train.epochz", "valid keys in train"]),
    "unknown section": ("trian:\n  epochs: 3\n", ["unknown config section 'trian'", "valid"]),
    "wrong type": ("train:\n  epochs: 1.5\n", ["train.epochs must be int, got 1.5"]),
    "negative lr": ("train:\n  lr: -0.01\n", ["train.lr must be > 0, got -0.01"]),
    "zero epochs": ("train:\n  epochs: 0\n", ["train.epochs must be >= 1, got 0"]),
    "splits sum": (
        "data:\n  train_size: 0.8\n",
        ["data.train_size + data.val_size + data.test_size must sum to 1, got 1.1"],
    ),
    "not a mapping": ("- data\n- train\n", ["must be a YAML mapping"]),
    "section not a mapping": ("train: 5\n", ["train must be a mapping"]),
}


@pytest.mark.parametrize("case", list(CONFIG_FILE_CASES))
def test_bad_config_file(case: str, work: Path, run_cli) -> None:
    text, fragments = CONFIG_FILE_CASES[case]
    config = work / "bad.yaml"
    config.write_text(text, encoding="utf-8")
    before = snapshot(work)
    assert_error(run_cli("train", "-c", config, "-o", work / "out"), *fragments)
    assert snapshot(work) == before


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["train.epochs"], ["malformed --set 'train.epochs'", "section.key=value"]),
        (["a.b.c=1"], ["malformed --set 'a.b.c=1'"]),
        (["=3"], ["malformed --set '=3'"]),
        ([".epochs=3"], ["malformed --set '.epochs=3'"]),
        (["train.=3"], ["malformed --set 'train.=3'"]),
        (["train.lr=.nan"], ["train.lr must be a finite number"]),
        (["train.lr=-0.001"], ["train.lr must be > 0"]),
        (["model.dropout=1.5"], ["model.dropout must be <= 1"]),
        (["data.train_size=0.9"], ["must sum to 1, got 1.2"]),
        (["data.val_size=0"], ["data.val_size must be > 0"]),
        (["train.batch_size=1e3"], ["train.batch_size must be int"]),
        (["train.device=tpu"], ["train.device must be one of 'auto', 'cpu'"]),
        (["preprocess.lowercase=maybe"], ["preprocess.lowercase must be bool"]),
        (["tokenizer.level=byte"], ["tokenizer.level must be one of 'word', 'char'"]),
        (["data.path="], ["data.path must be str, got null (no value)", "--set data.path=VALUE"]),
        (["data=3"], ["malformed --set 'data=3'"]),
    ],
)
def test_bad_set(overrides: list[str], fragments: list[str], work: Path, run_cli) -> None:
    before = snapshot(work)
    args = [arg for item in overrides for arg in ("--set", item)]
    assert_error(run_cli("train", "-c", SMOKE, *args, "-o", work / "out"), *fragments)
    assert snapshot(work) == before


def test_config_file_problems(work: Path, run_cli) -> None:
    (work / "latin.yaml").write_bytes(b"train:\n  seed: 1  # caf\xe9\n")
    before = snapshot(work)
    assert_error(run_cli("train", "-c", work / "nope.yaml"), "config file not found", "--config")
    assert_error(run_cli("train", "-c", work / "latin.yaml"), "is not UTF-8 text", "save it")
    assert snapshot(work) == before


def test_output_folder_that_is_a_file(work: Path, runs: SimpleNamespace, run_cli) -> None:
    (work / "taken").write_text("not a folder")
    before = snapshot(work)
    for out in (work / "taken", work / "taken" / "sub"):
        result = run_cli("train", "-c", SMOKE, *base_sets(runs.data), "-o", out)
        assert_error(result, f"cannot create the output folder {out}", "--output-dir")
    assert snapshot(work) == before


def test_resume_refuses_set_options(work: Path, run_cli) -> None:
    result = run_cli("train", "--resume", work, "--set", "train.epochs=5")
    assert_error(result, "--resume continues a run with its saved config; drop the --set")


# --- bad or unsafe run folders --------------------------------------------------------------


def _damage(case: str, run: Path, runs: SimpleNamespace) -> None:
    """Break the copied run folder `run` in the way `case` names."""
    weights = run / "model.safetensors"
    if case == "missing":
        shutil.rmtree(run)
    elif case == "no weights":
        weights.unlink()
    elif case == "random weights":
        weights.write_bytes(os.urandom(4096))
    elif case == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif case == "other tokenizer":
        shutil.copy(runs.other / "tokenizer.json", run / "tokenizer.json")
    elif case == "damaged tokenizer":
        (run / "tokenizer.json").write_bytes(b'{"level": "word", "vocab": [')
    elif case == "other labels":
        (run / "label_encoder.json").write_text('{"classes": ["a", "b"]}')
    elif case == "damaged config":
        (run / "config.yaml").write_text("model: [\n")


RUN_CASES = {
    "missing": ["run folder not found", "attnclf train", "--run DIR"],
    "no weights": ["is incomplete: missing model.safetensors", "retrain or pick another run"],
    "random weights": ["model.safetensors is not a valid safetensors file", "retrain"],
    "truncated weights": ["model.safetensors is not a valid safetensors file", "retrain"],
    "other tokenizer": ["tokenizer.json has", "tokens but", "come from different runs"],
    "damaged tokenizer": ["has a missing or damaged file", "retrain or pick another run"],
    "other labels": ["label_encoder.json has 2 classes", "come from different runs"],
    "damaged config": ["config.yaml", "YAML syntax error"],
}


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("case", list(RUN_CASES))
def test_bad_run_folder(
    case: str, command: str, work: Path, runs: SimpleNamespace, run_cli
) -> None:
    run = Path(shutil.copytree(runs.good, work / "run"))
    _damage(case, run, runs)
    before = snapshot(work)
    if command == "evaluate":
        result = run_cli("evaluate", "--run", run, "--data", runs.data)
    else:
        result = run_cli("predict", "--run", run, "Tennis match ends in a draw")
    assert_error(result, *RUN_CASES[case])
    assert snapshot(work) == before


def test_evaluate_lists_labels_the_run_never_saw(work: Path, runs: SimpleNamespace, run_cli):
    data = work / "pets.csv"
    data.write_text("title,category\nCat naps,Cats\nDog barks,Dogs\nTennis match,Sports\n")
    before = snapshot(work)
    result = run_cli("evaluate", "--run", runs.good, "--data", data)
    assert_error(result, "label(s) that the run never saw: 'Cats', 'Dogs'", "knows only")
    assert snapshot(work) == before


def test_output_paths_that_are_folders(work: Path, runs: SimpleNamespace, run_cli) -> None:
    before = snapshot(work)
    result = run_cli("evaluate", "--run", runs.good, "--data", runs.data, "-o", work)
    assert_error(result, f"cannot write {work} (it is a folder)", quiet=False)
    result = run_cli("predict", "--run", runs.good, "--plot", work, "Tennis match")
    assert_error(result, f"cannot write {work} (it is a folder)", quiet=False)
    assert snapshot(work) == before


@pytest.mark.parametrize("payload", ["torch.save", "pickle"])
def test_pickle_in_place_of_weights_is_refused_not_run(
    payload: str, work: Path, runs: SimpleNamespace, run_cli
) -> None:
    run = Path(shutil.copytree(runs.good, work / "run"))
    marker = work / "pwned"
    weights = run / "model.safetensors"
    if payload == "torch.save":
        buf = io.BytesIO()
        torch.save({"embedding.weight": Evil(marker)}, buf)
        weights.write_bytes(buf.getvalue())
    else:
        weights.write_bytes(pickle.dumps({"embedding.weight": Evil(marker)}))
    before = snapshot(work)
    for args in (["evaluate", "--run", run, "--data", runs.data], ["predict", "--run", run, "x"]):
        assert_error(run_cli(*args), "model.safetensors is not a valid safetensors file")
        assert not marker.exists()
    assert snapshot(work) == before
    # The payload is live: loading it the unsafe way would have run it.
    live = work / "control"
    if payload == "torch.save":
        buf = io.BytesIO()
        torch.save({"w": Evil(live)}, buf)
        torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    else:
        pickle.loads(pickle.dumps(Evil(live)))
    assert live.exists()


def test_pickle_in_place_of_checkpoint_is_refused_on_resume(
    work: Path, runs: SimpleNamespace, run_cli
) -> None:
    staging = work / "artifacts" / ".20250101-000000-smoke.incomplete"
    shutil.copytree(runs.good, staging)
    for name in ("model.safetensors", "metrics.json", "history.json"):
        (staging / name).unlink()
    marker = work / "pwned"
    torch.save({"model": Evil(marker)}, staging / CHECKPOINT)
    before = snapshot(work)
    result = run_cli("train", "--resume", staging)
    assert_error(result, "checkpoint.pt is not a valid attnclf checkpoint", "start a new run")
    assert not marker.exists()
    assert snapshot(work) == before  # still there, unpublished, `latest` unchanged


# --- predict inputs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "empty"),
    [
        ("", True),
        (" \t\n  ", True),
        ("The of and, !!! (???)", True),  # only stopwords, punctuation and parentheses
        ("матч 比赛 ⚽🎾", True),  # preprocess.remove_non_alphanumeric keeps A-Z, a-z, 0-9 only
        ("x" * 100_000, False),
        ("Tennis\x00\x07\x1b[31m match\x7f\u200b ends", False),
        ("Ténnis матч 比赛 ⚽🎾 مباراة market shares", False),
        ("tennis \udcff\udcfe match", False),  # undecodable argv bytes arrive as surrogates
    ],
    ids=["empty", "whitespace", "stopwords", "non-latin", "100k", "control", "mixed", "surrogates"],
)
def test_predict_odd_inputs(text: str, empty: bool, runs: SimpleNamespace, run_cli) -> None:
    result = run_cli("predict", "--run", runs.good, text)
    if empty:
        assert_error(result, EMPTY, "nothing to classify")
        return
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("[1] ") and result.stderr == ""
    assert not any(c in result.stdout for c in "\x00\x07\x1b\x7f")  # control chars are escaped
    line = run_cli("predict", "--run", runs.good, "--format", "json", text).stdout
    assert line.isascii() and json.loads(line)["text"] == text


def test_predict_100k_characters_of_words_is_truncated_with_a_warning(runs, run_cli) -> None:
    text = "Tennis match " * 8000
    assert len(text) > 100_000
    result = run_cli("predict", "--run", runs.good, text)
    assert result.exit_code == 0
    assert "(truncated to its first 32 tokens)" in result.stdout
    assert result.stderr.startswith("warning: 1 text(s) had more than tokenizer.max_seq_len=32")


def test_empty_text_among_several_is_reported_inline(runs: SimpleNamespace, run_cli) -> None:
    result = run_cli("predict", "--run", runs.good, "", "Tennis match")
    assert result.exit_code == 0
    assert "[1] \n    error: empty after preprocessing" in result.stdout
    assert "[2] Tennis match" in result.stdout


# --- nothing is lost ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "error"),
    [("fsync", OSError(28, "No space left on device")), ("replace", KeyboardInterrupt())],
)
def test_crash_mid_write_keeps_the_previous_file(
    where: str, error: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = jsonio.write_json(tmp_path / "metrics.json", {"f1": 0.5})
    previous = path.read_bytes()

    def boom(*args, **kwargs):
        raise error

    expected = UserError if isinstance(error, OSError) else KeyboardInterrupt
    with monkeypatch.context() as patch, pytest.raises(expected) as raised:
        patch.setattr(jsonio.os, where, boom)
        jsonio.write_json(path, {"f1": 0.9})
    if expected is UserError:
        assert re.search(
            r"cannot write .*metrics\.json \(No space left on device\)", str(raised.value)
        )
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_every_run_file_is_written_to_a_temporary_name_then_renamed(runs) -> None:
    writes, renames = runs.audit["writes"], runs.audit["renames"]
    assert writes, "the audit hook saw no writes"
    for path in writes:  # e.g. .20250101-000000-smoke.incomplete/.metrics.json.k2j4x.tmp
        assert path.parent.name.endswith(".incomplete"), path
        assert path.name.startswith(".") and path.name.endswith(".tmp"), path
    renamed = {src: dst for src, dst in renames}
    assert set(writes) <= set(renamed)
    final = {renamed[p].name for p in writes}
    assert final == {p.name for p in runs.twin.iterdir()}
    staging = writes[0].parent
    assert renamed[staging] == runs.twin  # the folder is published by one rename
    assert renamed[runs.twin.parent / f".latest.{os.getpid()}.tmp"].name == "latest"


def test_a_crash_late_in_training_leaves_nothing(
    work: Path, runs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args, **kwargs):
        raise RuntimeError("plotting crashed")

    monkeypatch.setattr("attnclf.plots.plot_history", crash)
    before = snapshot(work)
    cfg = load_config(SMOKE, [f"data.path={runs.data}", *BASE])
    with pytest.raises(RuntimeError, match="plotting crashed"):
        train(cfg, "smoke", work / "artifacts")
    assert snapshot(work) == before  # no run folder, no .incomplete folder, `latest` unchanged
    assert (work / "artifacts" / "latest").resolve().name == runs.good.name


def test_sigterm_checkpoint_and_exact_resume(
    work: Path, runs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, run_cli, sigterm_guard
) -> None:
    """A real SIGTERM mid-epoch (in-process): exit 130, checkpoint, then an exact resume."""
    should_stop = Trainer._should_stop
    sent = []

    def signal_once(self: Trainer) -> bool:
        if self.epoch == 1 and self.step == 2 and not sent:
            sent.append(True)
            _sigterm_self()
        return should_stop(self)

    monkeypatch.setattr(Trainer, "_should_stop", signal_once)
    out = work / "artifacts"
    latest = os.readlink(out / "latest")
    result = run_cli("train", "-c", SMOKE, *base_sets(runs.data), "-o", out)
    assert result.exit_code == 130, result.stderr
    assert "interrupted during epoch 2; checkpoint saved" in result.stderr
    (staging,) = out.glob(".*.incomplete")
    assert f"attnclf train --resume {staging}" in result.stderr
    assert (staging / CHECKPOINT).is_file() and not (staging / "model.safetensors").exists()
    assert os.readlink(out / "latest") == latest

    # A crash while finishing the resumed run keeps the checkpoint: still resumable.
    checkpoint = (staging / CHECKPOINT).read_bytes()
    with monkeypatch.context() as patch, pytest.raises(ZeroDivisionError):
        patch.setattr("attnclf.plots.plot_history", lambda *a: 1 / 0)
        resume(staging)
    assert (staging / CHECKPOINT).read_bytes() == checkpoint
    assert os.readlink(out / "latest") == latest

    result = run_cli("train", "--resume", staging)
    assert result.exit_code == 0, result.stderr
    assert "resuming after epoch 1, step " in result.stdout
    final = out / staging.name[1 : -len(".incomplete")]
    assert not staging.exists() and os.readlink(out / "latest") == final.name
    assert {p.name for p in final.iterdir()} == {p.name for p in runs.good.iterdir()}
    for name in ("model.safetensors", "metrics.json", "confusion_matrix.png"):
        assert (final / name).read_bytes() == (runs.good / name).read_bytes(), name


@pytest.fixture
def sigterm_guard():
    """Should attnclf leave SIGTERM to its default handler, fail the test instead of pytest."""

    def guard(signum: int, frame: object) -> None:
        raise AssertionError("SIGTERM reached the default handler: the process would die")

    previous = signal.signal(signal.SIGTERM, guard)
    yield
    signal.signal(signal.SIGTERM, previous)


def _sigterm_self() -> None:
    """Send SIGTERM to this process and let its Python handler run."""
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(3):  # the handler runs at the next bytecode boundary
        pass


@pytest.mark.parametrize("phase", ["reading data", "plotting", "a second signal"])
def test_sigterm_outside_the_training_loop_aborts_cleanly(
    phase: str,
    work: Path,
    runs: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    run_cli,
    sigterm_guard,
) -> None:
    """Before or after the loop, or a second time, SIGTERM acts like Ctrl-C: no leftovers."""
    import attnclf.data.prepare

    if phase == "reading data":

        def prepare(*args):
            _sigterm_self()
            return attnclf.data.prepare.prepare(*args)

        monkeypatch.setattr("attnclf.training.build.prepare", prepare)
    elif phase == "plotting":
        monkeypatch.setattr("attnclf.plots.plot_history", lambda *args: _sigterm_self())
    else:
        should_stop = Trainer._should_stop

        def signal_twice(self: Trainer) -> bool:
            if self.epoch == 1 and self.step == 1:
                _sigterm_self()  # the first asks for a clean stop ...
                assert self.stop_requested
                _sigterm_self()  # ... the second aborts at once, without a checkpoint
            return should_stop(self)

        monkeypatch.setattr(Trainer, "_should_stop", signal_twice)
    before = snapshot(work)
    result = run_cli("train", "-c", SMOKE, *base_sets(runs.data), "-o", work / "artifacts")
    assert result.exit_code == 130, result.stderr
    assert result.stderr == "interrupted without saving a checkpoint; no run folder was published\n"
    assert snapshot(work) == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_in_a_real_process_exits_130_and_resumes(
    signum: int, tmp_path: Path, runs: SimpleNamespace, run_cli
) -> None:
    data = tmp_path / "news.csv"
    data.write_text(
        "title,category\n"
        + runs.data.read_text().split("\n", 1)[1] * 12  # 576 rows: the signal lands mid-training
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "attnclf", "train", "-c", str(SMOKE), *base_sets(data)]
    with subprocess.Popen(
        [*cmd, "--set", "train.epochs=3", "-o", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        for line in proc.stdout:  # printed after the signal handler is installed
            if line.startswith("training on"):
                proc.send_signal(signum)
                break
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved. Resume with: attnclf train --resume" in err
    (staging,) = (tmp_path / "out").glob(".*.incomplete")
    assert (staging / CHECKPOINT).is_file()
    assert not (tmp_path / "out" / "latest").exists()
    result = run_cli("train", "--resume", staging)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "latest" / "model.safetensors").is_file()


# --- reproducibility ------------------------------------------------------------------------


def test_same_config_and_seed_give_identical_files(runs: SimpleNamespace) -> None:
    names = {p.name for p in runs.good.iterdir()}
    assert names == {p.name for p in runs.twin.iterdir()}
    for name in names - {"history.json"}:
        assert (runs.good / name).read_bytes() == (runs.twin / name).read_bytes(), name
    # history.json differs only in each epoch's wall-clock seconds.
    first, second = (json.loads((r / "history.json").read_text()) for r in (runs.good, runs.twin))
    for row in first + second:
        row.pop("seconds")
    assert first == second


# --- concurrent runs, damaged run-folder files, usage errors, folders left behind -----------

_SAME_SECOND = (
    "import sys, time; time.strftime = lambda *a: '20260101-000000'; "
    "from attnclf.cli import main; sys.argv[0] = 'attnclf'; main()"
)


def test_concurrent_runs_in_one_second_publish_complete_separate_folders(
    work: Path, runs: SimpleNamespace
) -> None:
    """Two `attnclf train` processes, one --output-dir, one timestamp: both runs publish whole."""
    three = work / "three.csv"
    lines = runs.data.read_text(encoding="utf-8").splitlines()
    three.write_text("\n".join(x for x in lines if not x.endswith(",Sci/Tech")) + "\n")
    out = work / "shared"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SAME_SECOND,
                "train",
                "-c",
                str(SMOKE),
                "-o",
                str(out),
                *base_sets(data),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for data in (runs.data, three)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    folders = sorted(p for p in out.iterdir() if p.name.startswith("2026"))
    assert [p.name for p in folders] == ["20260101-000000-smoke", "20260101-000000-smoke-2"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    seen = set()
    for folder in folders:  # every file of a folder comes from the run that trained on its data
        cfg = load_config(folder / "config.yaml")
        classes = json.loads((folder / "label_encoder.json").read_text())["classes"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert len(classes) == (3 if cfg.data.path == str(three) else 4)
        assert list(metrics["class"]) == classes
        assert Predictor.from_run(folder).predict(["tennis match"])[0].label in classes
        seen.add(cfg.data.path)
    assert seen == {str(runs.data), str(three)}


def test_run_names_are_reserved_atomically(tmp_path: Path, monkeypatch) -> None:
    """The second run of a second never takes (or deletes) the first one's staging folder."""
    monkeypatch.setattr("attnclf.runfolder.time.strftime", lambda *a: "20260101-000000")
    first = RunFolder.create(tmp_path, "smoke")
    (first.staging / "config.yaml").write_text("mine")
    second = RunFolder.create(tmp_path, "smoke")
    assert first.staging != second.staging and first.final != second.final
    assert (first.staging / "config.yaml").read_text() == "mine"


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("stopwords.json", "[1, 2, 3]", "expected a list of strings"),
        ("stopwords.json", '{"a": 1}', "expected a list of strings"),
        (
            "tokenizer.json",
            '{"level": "word", "num_tokens": null, "min_freq": 1, "vocab": [0, 1, 2]}',
            "vocab must be a list of strings",
        ),
        (
            "tokenizer.json",
            '{"level": 3, "num_tokens": null, "min_freq": 1, "vocab": []}',
            "level must be 'word' or 'char'",
        ),
        (
            "tokenizer.json",
            '{"level": "word", "num_tokens": "many", "min_freq": 1, "vocab": []}',
            "num_tokens must be a whole number",
        ),
        ("tokenizer.json", "[]", "expected a JSON object"),
        ("tokenizer.json", '{"level": "word"}', "no 'num_tokens' entry"),
        ("label_encoder.json", '{"classes": {"a": 1}}', "classes must be a list of strings"),
        ("label_encoder.json", '{"classes": ["a", "a"]}', "classes must not repeat"),
        ("label_encoder.json", '{"classes": [1, 2]}', "classes must be a list of strings"),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_run_folder_files_with_wrong_types_name_the_file(
    name: str, content: str, fragment: str, command: str, work: Path, runs, run_cli
) -> None:
    run = Path(shutil.copytree(runs.good, work / "run"))
    (run / name).write_text(content, encoding="utf-8")
    args = ["--data", runs.data] if command == "evaluate" else ["tennis match"]
    result = run_cli(command, "--run", run, *args)
    assert_error(result, f"has a missing or damaged file: {name}", fragment, "retrain")


@pytest.mark.parametrize(
    ("args", "fragment", "command"),
    [
        (
            ["predict", "--top-k", "0", "x"],
            "'--top-k' / '-k': 0 is not in the range x>=1",
            "predict",
        ),
        (["predict", "--format", "xml", "x"], "'xml' is not one of 'table', 'json'", "predict"),
        (["train", "--bogus"], "No such option: --bogus", "train"),
        (["evaluate"], "Missing option '--data'", "evaluate"),
        (["data", "frobnicate"], "No such command 'frobnicate'", "data"),
    ],
)
def test_usage_errors_from_the_cli_framework_are_one_line(
    args: list[str], fragment: str, command: str, run_cli
) -> None:
    assert_error(run_cli(*args), fragment, f"see `attnclf {command} --help`")


@pytest.mark.parametrize("existing", ["", "a", "a/b"])
def test_a_failed_first_run_removes_every_folder_it_created(
    existing: str, work: Path, run_cli
) -> None:
    single = work / "single.csv"
    single.write_text("title,category\n" + "tennis match news,Sports\n" * 30, encoding="utf-8")
    if existing:
        (work / "out" / existing).mkdir(parents=True)
    before = snapshot(work)
    out = work / "out" / "a" / "b" / "c"
    result = run_cli("train", "-c", SMOKE, *base_sets(single), "-o", out)
    assert_error(result, "a single class")
    assert snapshot(work) == before  # the existing folders stay, the new ones are gone


def test_a_pipe_as_data_file_is_named_as_such(
    work: Path, run_cli, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fifo = tmp_path_factory.mktemp("fifo") / "data.csv"  # outside `work`: a snapshot reads files
    os.mkfifo(fifo)
    before = snapshot(work)
    result = run_cli("train", "-c", SMOKE, "--set", f"data.path={fifo}", "-o", work / "o")
    assert_error(result, "is not a regular file (a pipe, socket or device)", "data.path")
    assert snapshot(work) == before
