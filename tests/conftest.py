"""Shared fixtures: the shared AG News sample, NLTK data, and a CLI runner."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

AG_NEWS_10K = Path(
    os.environ.get("ATTNCLF_AG_NEWS_10K", SHARED / "data" / "ag_news_titles_10k.csv")
)


@pytest.fixture
def ag_news_10k() -> Path:
    """The shared 10k AG News titles; tests that need it skip when it is absent."""
    if not AG_NEWS_10K.is_file():
        pytest.skip(f"shared data not found at {AG_NEWS_10K} (set ATTNCLF_AG_NEWS_10K)")
    return AG_NEWS_10K


TOPICS = {
    "World": "minister election parliament troops ceasefire embassy",
    "Sports": "tennis match goal league coach tournament",
    "Business": "stocks profit shares market earnings merger",
    "Sci/Tech": "software internet chip space nasa computer",
}


def news_titles(label: str, n: int = 12) -> list[str]:
    """`n` made-up titles about one topic of `TOPICS`."""
    w = TOPICS[label].split()
    return [f"{w[i % 6].title()} {w[(i + 1) % 6]} news {w[(i + 2) % 6]} {i}" for i in range(n)]


def write_news_csv(path: Path, per_class: int = 12) -> Path:
    """Write a small made-up CSV in Made-With-ML's news.csv layout, 4 classes x `per_class`."""
    rows = ["title,category"]
    rows += [f'"{title}",{label}' for label in TOPICS for title in news_titles(label, per_class)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_topic_csv(path: Path, per_class: int = 60, seed: int = 0) -> Path:
    """Like `write_news_csv`, but each title mixes 2 topic words with 3 shared noise words."""
    rng = random.Random(seed)
    noise = ["week", "report", "new", "plan", "talks", "says", "first", "year"]
    rows = ["title,category"]
    for label, words in TOPICS.items():
        for _ in range(per_class):
            title = rng.sample(words.split(), 2) + rng.sample(noise, 3)
            rng.shuffle(title)
            rows.append(f"{' '.join(title)},{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def news_csv(tmp_path: Path) -> Path:
    """A small made-up CSV in Made-With-ML's news.csv layout, 4 classes x 12 rows."""
    return write_news_csv(tmp_path / "news.csv")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run (smoke config, 2 epochs, 1 thread, on `write_news_csv`), trained per module."""
    from attnclf.config import load_config
    from attnclf.training.train import train

    tmp = tmp_path_factory.mktemp("run")
    data = write_news_csv(tmp / "news.csv")
    overrides = [f"data.path={data}", "train.epochs=2", "train.num_threads=1"]
    cfg = load_config(ROOT / "tests" / "smoke.yaml", overrides)
    return train(cfg, "smoke", tmp / "artifacts").run_dir


@dataclass
class CliResult:
    """Exit code and captured output of one in-process `attnclf` invocation."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys, monkeypatch) -> Callable[..., CliResult]:
    """Call the real console entry point (`attnclf.cli.main`) in-process with the given args."""
    from attnclf.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["attnclf", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        out = capsys.readouterr()
        code = exc.value.code
        return CliResult(
            code if isinstance(code, int) else (0 if code is None else 1), out.out, out.err
        )

    return run


@dataclass
class Server:
    """An `attnclf serve` subprocess listening on 127.0.0.1."""

    process: subprocess.Popen
    url: str

    def stop(self) -> int:
        """SIGTERM, then its exit code (killed if it is still up after 30 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: Path, *args: str, timeout: float = 60.0) -> Server:
    """Start `attnclf serve --run RUN ARGS...` on a free loopback port; return once it answers."""
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "attnclf", "serve", "--run", str(run), "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stderr.read()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError(f"the server did not answer within {timeout} s")
