"""The CLI as users run it (`python -m attnclf`): help, version, `data stats`, `data download`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnclf import __version__
from attnclf.cli import app, main

ROOT = Path(__file__).resolve().parents[1]


def attnclf(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "no_proxy": "*", "NO_PROXY": "*"}
    return subprocess.run(
        [sys.executable, "-m", "attnclf", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_exits_zero() -> None:
    result = attnclf("--help")
    assert result.returncode == 0, result.stderr
    for command in ("train", "data"):
        assert command in result.stdout


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from attnclf.cli import main\n"
        "for argv in (['--help'], ['data', '--help'], ['data', 'stats', '--help'],"
        " ['train', '--help']):\n"
        "    sys.argv = ['attnclf', *argv]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (argv, exc.code)\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "stats" in result.stdout and "--json" in result.stdout


def test_version() -> None:
    result = attnclf("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"attnclf {__version__}"


def test_data_stats_report(news_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # in-process (the subprocess runs below cover the entry point) to keep the suite fast
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["data", "stats", str(news_csv)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "layout: header" in out
    assert "rows: train 33, val 7, test 8" in out or "rows: train 33, val 8, test 7" in out
    for label in ("Business", "Sci/Tech", "Sports", "World"):
        assert label in out
    assert "also in train verbatim" in out


def test_data_stats_json_with_dropped_rows(tmp_path: Path, news_csv: Path) -> None:
    path = tmp_path / "with_gaps.csv"
    path.write_text(news_csv.read_text(encoding="utf-8") + ",World\nNo label here,\n")
    result = attnclf("data", "stats", str(path), "--json", "--set", "tokenizer.max_seq_len=3")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # warnings go to stderr, stdout stays valid JSON
    assert report["layout"] == "header"
    assert sum(report["rows"].values()) == 48
    assert report["dropped"]["empty_text_or_label"] == 2
    assert report["longer_than_max_seq_len"] > 0
    assert set(report["classes"]["train"]) == {"Business", "Sci/Tech", "Sports", "World"}
    assert "warning: dropped 2 row(s)" in result.stderr


def test_data_stats_missing_file(tmp_path: Path) -> None:
    # stopwords off only to skip importing NLTK; the file check does not depend on it
    missing = str(tmp_path / "nope.csv")
    result = attnclf("data", "stats", missing, "--set", "preprocess.stopwords=false")
    assert_user_error(result, "data file not found", "nope.csv")
    assert result.stdout == ""


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`main()` in-process (cheap), with the same result shape as a subprocess run."""
    monkeypatch.setattr(sys, "argv", ["attnclf", *args])
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, exc.value.code or 0, out, err)


# `data download` validates the config before any heavy import, so it is the cheap probe for
# config errors; every command shares the same `_load`.
@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("epochs", "malformed --set"),
        ("train.epoch=3", "unknown key train.epoch"),
        ("model.cell=cnn", "model.cell must be one of"),
    ],
)
def test_bad_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], setting: str, fragment: str
) -> None:
    assert_user_error(run_main(monkeypatch, capsys, "data", "download", "--set", setting), fragment)


def test_bad_set_in_a_real_process() -> None:
    assert_user_error(attnclf("data", "download", "--set", "train.lr=-1"), "train.lr must be > 0")


def test_missing_config_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "none.yaml")
    result = run_main(monkeypatch, capsys, "data", "download", "--config", missing)
    assert_user_error(result, "config file not found")


def test_yaml_error_in_config_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  epochs: [3\n", encoding="utf-8")
    result = run_main(monkeypatch, capsys, "data", "download", "-c", str(path))
    assert_user_error(result, "YAML syntax error", "line")


def test_unknown_command_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_main(monkeypatch, capsys, "data", "frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.fixture
def csv_server() -> Iterator[tuple[str, bytes]]:
    body = b"title,category\nStocks rally,Business\nGoal!,Sports\n"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/x.csv":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", body
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_data_download(csv_server: tuple[str, bytes], tmp_path: Path) -> None:
    base, body = csv_server
    dest = tmp_path / "data" / "x.csv"
    result = attnclf(
        "data",
        "download",
        "--set",
        f"data.url={base}/x.csv",
        "--set",
        f"data.path={dest}",
        "--set",
        "data.checksum=null",
    )
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == body
    assert str(dest) in result.stdout


def test_data_download_http_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    csv_server: tuple[str, bytes],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    base, _ = csv_server
    dest = tmp_path / "missing.csv"
    url, path = f"data.url={base}/missing.csv", f"data.path={dest}"
    result = run_main(monkeypatch, capsys, "data", "download", "--set", url, "--set", path)
    assert_user_error(result, "HTTP 404")
    assert not dest.exists()


def test_data_download_without_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = f"data.path={tmp_path}/x.csv"
    result = run_main(
        monkeypatch, capsys, "data", "download", "--set", "data.url=null", "--set", path
    )
    assert_user_error(result, "data.url is not set")
