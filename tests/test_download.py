"""Downloads against a local HTTP server: checksums, atomic placement, failures."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from attnclf.config import DataConfig
from attnclf.data.download import download, ensure_data, file_digest, verify
from attnclf.errors import UserError

PAYLOAD = os.urandom(300_000) + b"id,title,category\n1,Stocks rally,Business\n"


class Server:
    """A local HTTP server serving `files`, counting requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"/news.csv": PAYLOAD}
        self.requests = 0
        self.release = threading.Event()
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests += 1
                if self.path == "/slow":
                    state.release.wait(5)
                    return
                body = state.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                claimed = len(body) + (1000 if self.path == "/truncated" else 0)
                self.send_header("Content-Length", str(claimed))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, name: str = "news.csv") -> str:
        """Address of `name` on this server."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    yield srv
    srv.release.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join()


def digest(algo: str, data: bytes = PAYLOAD) -> str:
    return hashlib.new(algo, data).hexdigest()


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.part"))


def test_download_success(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "dir" / "news.csv"
    result = download(server.url(), dest, f"sha256:{digest('sha256')}", progress=False)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == []
    assert server.requests == 1


def test_download_without_checksum(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "news.csv"
    download(server.url(), dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_gitsha1_is_the_git_blob_id(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(PAYLOAD)
    expected = hashlib.sha1(b"blob %d\0" % len(PAYLOAD) + PAYLOAD).hexdigest()
    assert file_digest(path, "gitsha1") == expected
    if shutil.which("git"):
        out = subprocess.run(
            ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected


def test_gitsha1_of_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert file_digest(path, "gitsha1") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


@pytest.mark.parametrize("algo", ["md5", "sha1", "sha256"])
def test_file_digest_and_verify(tmp_path: Path, algo: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(PAYLOAD)
    assert file_digest(path, algo) == digest(algo)
    assert verify(path, f"{algo}:{digest(algo).upper()}")
    assert not verify(path, f"{algo}:{digest(algo, b'other')}")


@pytest.mark.parametrize("checksum", ["sha256", "crc32:abcd", "md5:xyz", "md5:abc", ""])
def test_malformed_checksum_names_valid_algos(tmp_path: Path, checksum: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(PAYLOAD)
    with pytest.raises(UserError, match="md5, sha1, sha256, gitsha1"):
        verify(path, checksum)


def test_unknown_algo_in_file_digest(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="md5, sha1, sha256, gitsha1"):
        file_digest(tmp_path / "x", "crc32")


def test_malformed_checksum_fails_before_network(server: Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="malformed checksum"):
        download(server.url(), tmp_path / "news.csv", "sha256:nothex", progress=False)
    assert server.requests == 0


def test_checksum_mismatch_creates_nothing(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "news.csv"
    wrong = digest("md5", b"something else")
    with pytest.raises(UserError) as err:
        download(server.url(), dest, f"md5:{wrong}", progress=False)
    message = str(err.value)
    assert wrong in message and digest("md5") in message
    assert "data.checksum" in message
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_keeps_existing_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "news.csv"
    dest.write_bytes(b"old contents")
    with pytest.raises(UserError, match="checksum mismatch"):
        download(server.url(), dest, f"md5:{digest('md5', b'neither')}", progress=False)
    assert dest.read_bytes() == b"old contents"
    assert leftovers(tmp_path) == []


def test_server_down(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "news.csv"
    with pytest.raises(UserError, match=r"could not download .*--set data\.path=FILE"):
        download(f"http://127.0.0.1:{port}/news.csv", dest, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_404(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "news.csv"
    with pytest.raises(UserError, match=r"HTTP 404.*save it as .*news\.csv"):
        download(server.url("missing.csv"), dest, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_response(server: Server, tmp_path: Path) -> None:
    server.files["/truncated"] = PAYLOAD
    dest = tmp_path / "news.csv"
    with pytest.raises(UserError, match="connection closed after"):
        download(server.url("truncated"), dest, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_timeout(server: Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="timed out"):
        download(server.url("slow"), tmp_path / "news.csv", timeout=0.2, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupt_removes_temp_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "news.csv"
    dest.write_bytes(b"old contents")

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download(server.url(), dest, f"md5:{digest('md5')}", progress=False)
    assert dest.read_bytes() == b"old contents"
    assert leftovers(tmp_path) == []


def test_skip_when_present_and_valid(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "news.csv"
    dest.write_bytes(PAYLOAD)
    assert download(server.url(), dest, f"gitsha1:{file_digest(dest, 'gitsha1')}") == dest
    assert download(server.url(), dest) == dest
    assert server.requests == 0


def test_redownload_when_present_but_invalid(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "news.csv"
    dest.write_bytes(b"stale")
    download(server.url(), dest, f"sha1:{digest('sha1')}", progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == 1


def test_ensure_data_uses_existing_file_as_is(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_bytes(b"text,label\nhello,World\n")
    cfg = DataConfig(path=str(path), url=server.url(), checksum=f"md5:{digest('md5')}")
    assert ensure_data(cfg) == path
    assert server.requests == 0


def test_ensure_data_downloads_when_missing(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "data" / "news.csv"
    cfg = DataConfig(path=str(path), url=server.url(), checksum=f"md5:{digest('md5')}")
    assert ensure_data(cfg, progress=False) == path
    assert path.read_bytes() == PAYLOAD


def test_ensure_data_rejects_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"is a directory.*--set data\.path=FILE"):
        ensure_data(DataConfig(path=str(tmp_path)))


def test_ensure_data_missing_without_url(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(UserError, match=r"data file not found: .*--set data\.path=FILE"):
        ensure_data(DataConfig(path=str(path), url=None))
