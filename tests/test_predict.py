"""`attnclf predict` and `Predictor`: outputs, inputs, explanations and damaged runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from attnclf.cli import app
from attnclf.data.texts import read_texts
from attnclf.encoding.tokenizer import Tokenizer
from attnclf.errors import UserError
from attnclf.predict.base import Prediction
from attnclf.predict.torch_backend import Predictor

TITLES = [
    "Tennis match ends in a draw",
    "Stocks and shares rally as market earnings beat forecasts",
    "NASA software",
    "Minister calls for ceasefire after troops cross the border at dawn",
]
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> Predictor:
    """The module's tiny run, loaded once."""
    return Predictor.from_run(trained_run)


def cli(run: Path, *args: str, stdin: str | None = None):
    """Invoke `attnclf predict --run RUN ARGS...` in-process."""
    return runner.invoke(app, ["predict", "--run", str(run), *args], input=stdin)


def check(p: Prediction, classes: list[str], top_k: int | None = None) -> None:
    """A well-formed prediction: sorted probabilities over the classes, one weight per token."""
    probs = list(p.probabilities.values())
    assert len(probs) == (top_k or len(classes))
    assert probs == sorted(probs, reverse=True)
    assert p.label == next(iter(p.probabilities)) and p.label in classes
    assert p.error is None and p.clean and len(p.tokens) == len(p.attention) > 0
    assert abs(sum(p.attention) - 1) < 1e-5
    if top_k is None:
        assert abs(sum(probs) - 1) < 1e-5


def test_predict_many_matches_one_at_a_time(predictor: Predictor) -> None:
    classes = predictor.run.labels.classes
    together = predictor.predict(TITLES)  # one length-sorted batch, put back in input order
    for text, p in zip(TITLES, together, strict=True):
        check(p, classes)
        (alone,) = predictor.predict([text])
        assert p.text == text and p.label == alone.label and p.tokens == alone.tokens
        assert p.probabilities == pytest.approx(alone.probabilities, abs=1e-5)
        assert p.attention == pytest.approx(alone.attention, abs=1e-5)
    assert together[2].tokens == ["nasa", "software"]


def test_top_k(predictor: Predictor) -> None:
    full, top = predictor.predict(TITLES[:1]) + predictor.predict(TITLES[:1], top_k=2)
    check(top, predictor.run.labels.classes, top_k=2)
    assert list(top.probabilities) == list(full.probabilities)[:2]
    with pytest.raises(UserError, match="at least 1"):
        predictor.predict(TITLES, top_k=0)


def test_empty_after_cleaning_is_flagged_in_a_batch(predictor: Predictor) -> None:
    out = predictor.predict(["the of and", TITLES[0], "  ...!  ", ""])
    assert [p.label is None for p in out] == [True, False, True, True]
    assert all("empty after preprocessing" in p.error for p in out if p.label is None)
    assert json.loads(out[0].to_json())["label"] is None


def test_overlong_and_odd_unicode_inputs(predictor: Predictor) -> None:
    max_len = predictor.run.config.tokenizer.max_seq_len
    texts = [
        ("tennis match " * 8000)[:100_000],
        "Tennis 🎾 match ⚽ Ελλάδα 東京 مرحبا",
        "stocks\x00\x1b[31m\u202e\x07 market\ud800",
        "🎾🎾🎾 tennis",
    ]
    long, mixed, control, emoji = predictor.predict(texts)
    assert long.truncated and len(long.tokens) == max_len
    for p in (mixed, control, emoji):
        check(p, predictor.run.labels.classes)
        assert not p.truncated and json.loads(p.to_json())["text"] == p.text
    assert control.tokens == ["stocks", "31m", "market"]


def test_cli_table_explain_and_truncation_note(trained_run: Path) -> None:
    result = cli(trained_run, "--explain", TITLES[0], "Tennis " * 50)
    assert result.exit_code == 0, result.output
    assert "[1] Tennis match ends in a draw" in result.stdout and "[2] Tennis" in result.stdout
    assert "tennis" in result.stdout and "█" in result.stdout
    assert "truncated" in result.stdout and "max_seq_len" in result.stderr


def test_cli_json_lines(trained_run: Path) -> None:
    result = cli(trained_run, "--format", "json", "--top-k", "3", *TITLES, "the", "🎾\x1b")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == [*TITLES, "the", "🎾\x1b"]
    assert rows[4]["label"] is None and "empty" in rows[4]["error"]
    for r in rows[:4]:
        assert set(r) >= {"text", "clean", "label", "probabilities", "tokens", "attention"}
        probs = list(r["probabilities"].values())
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)


@pytest.mark.parametrize("kind", ["txt", "csv", "stdin"])
def test_cli_file_inputs(trained_run: Path, tmp_path: Path, kind: str) -> None:
    texts = [TITLES[0], "the", TITLES[1]]
    if kind == "csv":
        source = tmp_path / "in.csv"
        source.write_text("title,other\n" + "".join(f'"{t}",x\n' for t in texts), "utf-8")
    elif kind == "txt":
        source = tmp_path / "in.txt"
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    else:
        source = "-"
    result = cli(trained_run, "--file", str(source), "--format", "json", stdin="\n".join(texts))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == texts
    assert [r["label"] is None for r in rows] == [False, True, False]


def test_read_texts_csv_column_fallback_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('id,text\n1,"a, b"\n2,c\n', encoding="utf-8")
    assert list(read_texts(str(path), ["headline", "text"])) == ["a, b", "c"]
    with pytest.raises(UserError, match="found columns: 'id', 'text'"):
        list(read_texts(str(path), ["headline"]))
    with pytest.raises(UserError, match="input file not found"):
        read_texts(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(UserError, match="not UTF-8"):
        list(read_texts(str(bad)))


def test_cli_plot_one_and_many(trained_run: Path, tmp_path: Path) -> None:
    png = tmp_path / "attention.png"
    assert cli(trained_run, "--plot", str(png), TITLES[0]).exit_code == 0
    assert cli(trained_run, "--plot", str(png), TITLES[0], "the", TITLES[1]).exit_code == 0
    made = sorted(p.name for p in tmp_path.glob("*.png"))
    assert made == ["attention-1.png", "attention-3.png", "attention.png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_usage_errors(trained_run: Path, tmp_path: Path) -> None:
    for args in ([], ["--file", "-", "text"]):
        result = cli(trained_run, *args)
        assert isinstance(result.exception, UserError) and "not both" in str(result.exception)
    result = cli(tmp_path / "none", "text")
    assert isinstance(result.exception, UserError) and "attnclf train" in str(result.exception)


def damaged(run: Path, tmp_path: Path) -> Path:
    """A copy of `run` to break."""
    return Path(shutil.copytree(run, tmp_path / "run"))


def test_mismatched_tokenizer(trained_run: Path, tmp_path: Path) -> None:
    run = damaged(trained_run, tmp_path)
    Tokenizer(vocab=[*Tokenizer.load(run / "tokenizer.json").vocab, "extra"]).save(
        run / "tokenizer.json"
    )
    with pytest.raises(UserError, match=r"tokenizer\.json has \d+ tokens.*different runs"):
        Predictor.from_run(run)


def test_config_that_does_not_match_the_weights(trained_run: Path, tmp_path: Path) -> None:
    run = damaged(trained_run, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["hidden_dim"] += 1
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match=r"model\.safetensors does not match.*fc1\.weight"):
        Predictor.from_run(run)


def run_main(*commands: list[str]) -> tuple[list[int], str, str]:
    """Run `attnclf` commands like the console script in one fresh interpreter.

    Returns each command's exit code, stdout, and stderr; the stderr ends with the heavy
    modules that got imported (none is expected).
    """
    script = (
        "import sys\nfrom attnclf.cli import main\n"
        f"for argv in {commands!r}:\n"
        "    sys.argv = ['attnclf', *argv]\n"
        "    try:\n        main()\n    except SystemExit as exc:\n"
        "        print('exit:', exc.code, flush=True)\n"
        "heavy = ('pandas', 'sklearn', 'matplotlib', 'nltk', 'scipy')\n"
        "print('heavy:', sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    codes = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("exit:")]
    return codes, done.stdout, done.stderr


def test_end_to_end_exit_codes_and_light_imports(trained_run: Path, tmp_path: Path) -> None:
    run = damaged(trained_run, tmp_path)
    (run / "model.safetensors").unlink()
    codes, out, err = run_main(
        ["predict", "--run", str(trained_run), "one title about tennis"],
        ["predict", "--run", str(trained_run), "the of and"],
        ["predict", "--run", str(run), "tennis"],
    )
    assert codes == [0, 2, 2], err
    assert out.startswith("[1] one title about tennis")
    assert "error: the text is empty after preprocessing" in err
    assert f"run folder {run} is incomplete: missing model.safetensors" in err
    assert "heavy: []" in err  # no pandas, sklearn, matplotlib, nltk or scipy


def test_process_entry_point_flushes_and_keeps_exit_codes(trained_run: Path) -> None:
    """`python -m attnclf` skips the interpreter's teardown but loses no output or exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def attnclf(*args: str) -> subprocess.CompletedProcess:
        """One real process, its output captured through pipes (block-buffered)."""
        command = [sys.executable, "-m", "attnclf", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    texts = [f"stocks fall on oil worries {i}" for i in range(300)]
    ok = attnclf("predict", "--run", str(trained_run), "--format", "json", *texts)
    assert ok.returncode == 0
    assert len(ok.stdout.splitlines()) == 300  # nothing lost in the unflushed buffer
    bad = attnclf("predict", "--run", str(trained_run / "missing"), "a title")
    assert bad.returncode == 2
    assert bad.stdout == "" and bad.stderr.startswith("error: run folder not found")
    assert len(bad.stderr.splitlines()) == 1


LEGACY_NAMES = {  # attnclf 0.1.0's flat parameter names
    "attention.proj.": "attn_proj.0.",
    "attention.score.": "attn_score.",
    "wide.table.weight": "wide.weight",
    "naive_bayes.log_probs": "nb_log_probs",
    "naive_bayes.log_prior": "nb_log_prior",
}


def test_runs_written_by_0_1_0_load_and_predict_identically(
    trained_run: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    def legacy(key: str) -> str:
        new = next((n for n in LEGACY_NAMES if key.startswith(n)), None)
        return key if new is None else LEGACY_NAMES[new] + key[len(new) :]

    run = damaged(trained_run, tmp_path)
    state = load_file(run / "model.safetensors")
    assert any(k.startswith("naive_bayes.") for k in state)  # the smoke config has every path
    save_file({legacy(k): v for k, v in state.items()}, run / "model.safetensors")  # no metadata
    old, new = Predictor.from_run(run), Predictor.from_run(trained_run)
    assert [p.to_json() for p in old.predict(TITLES)] == [p.to_json() for p in new.predict(TITLES)]


def test_weights_of_an_unknown_format_are_refused_in_one_line(
    trained_run: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    run = damaged(trained_run, tmp_path)
    weights = run / "model.safetensors"
    save_file(load_file(weights), weights, metadata={"format": "9 attnclf 9.0.0"})
    with pytest.raises(UserError, match=r"weights format 9, written by attnclf 9\.0\.0") as raised:
        Predictor.from_run(run)
    assert "\n" not in str(raised.value) and "upgrade attnclf or retrain" in str(raised.value)
