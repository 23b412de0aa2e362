"""Fetch the dataset: streaming download, checksum verification, atomic placement."""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from attnclf.config import DataConfig
from attnclf.errors import UserError

_HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "gitsha1": 40}
ALGOS = tuple(_HEX_LENGTHS)
_CHUNK = 1 << 20


def file_digest(path: str | Path, algo: str) -> str:
    """Hex digest of a file with md5, sha1, sha256 or gitsha1 (the git blob id), read in chunks."""
    if algo not in _HEX_LENGTHS:
        raise UserError(f"unknown checksum algorithm {algo!r}; use one of {', '.join(ALGOS)}")
    path = Path(path)
    if algo == "gitsha1":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        digest = hashlib.new(algo)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    """Split `algo:hex` into a lower-case algorithm and hex digest, rejecting malformed ones."""
    algo, _, expected = (part.strip().lower() for part in checksum.partition(":"))
    if len(expected) != _HEX_LENGTHS.get(algo) or not set(expected) <= set("0123456789abcdef"):
        raise UserError(
            f"malformed checksum {checksum!r}; set data.checksum to ALGO:HEX with ALGO one of "
            f"{', '.join(ALGOS)} (e.g. md5:<32 hex digits>), or to null to skip verification"
        )
    return algo, expected


def verify(path: str | Path, checksum: str) -> bool:
    """True when the file at `path` matches `checksum` (`algo:hex`, hex case-insensitive)."""
    algo, expected = _parse_checksum(checksum)
    return file_digest(path, algo) == expected


def _reason(exc: BaseException) -> str:
    """Short human reason for a network failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _fetch(url: str, out_path: Path, dest: Path, timeout: float, progress: bool) -> None:
    """Stream `url` into a new file `out_path` (fsynced); network failures become `UserError`."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, out_path.open("xb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=None if progress else True,
            )
            with bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise ConnectionError(f"connection closed after {received} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise UserError(
            f"could not download {url} ({_reason(exc)}); download it yourself and save it as "
            f"{dest}, or point at another file with --set data.path=FILE"
        ) from None


def _check(path: Path, checksum: str, url: str) -> None:
    """Raise `UserError` naming expected and actual digests when `path` does not match."""
    algo, expected = _parse_checksum(checksum)
    actual = file_digest(path, algo)
    if actual != expected:
        raise UserError(
            f"checksum mismatch for {url}: expected {algo}:{expected}, got {algo}:{actual}; "
            "check the URL and data.checksum, or set data.checksum=null to skip verification"
        )


def download(
    url: str,
    dest: str | Path,
    checksum: str | None = None,
    *,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest` atomically, skipping the network when a valid copy is present."""
    dest = Path(dest)
    if checksum is not None:
        _parse_checksum(checksum)  # reject a malformed checksum before any network traffic
    if dest.is_dir():
        raise UserError(f"{dest} is a directory; pass --set data.path=FILE with a file path")
    if dest.is_file() and (checksum is None or verify(dest, checksum)):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        _fetch(url, tmp, dest, timeout, progress)
        if checksum is not None:
            _check(tmp, checksum, url)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def ensure_data(cfg: DataConfig, *, progress: bool = True) -> Path:
    """The CSV that training reads: `cfg.path` as-is if present, else downloaded from `cfg.url`."""
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        raise UserError(
            f"data.path {path} is a directory; pass --set data.path=FILE with a labelled CSV"
        )
    if path.exists():
        return path
    if cfg.url:
        return download(cfg.url, path, cfg.checksum, progress=progress)
    raise UserError(f"data file not found: {path}; pass --set data.path=FILE with a labelled CSV")
