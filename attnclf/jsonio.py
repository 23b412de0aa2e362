"""Crash-safe file writes: every file goes to a temporary name and is renamed into place."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from attnclf.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder and `os.replace`.

    On any failure the previous file at `path` (if any) is untouched and the temporary file is
    removed; an OS error (a folder in the way, no permission, a full disk) becomes a `UserError`.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            reason = "it is a folder" if path.is_dir() else exc.strerror or str(exc)
            raise UserError(
                f"cannot write {path} ({reason}); pass a file path in a writable folder, "
                f"or free some disk space"
            ) from exc
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
