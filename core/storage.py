"""Paths that may be local or gs://: one place that reads, writes and lists them.

Local paths use the filesystem. gs:// paths prefer the Vertex AI Cloud Storage FUSE mount
(/gcs/BUCKET/KEY) when it exists, else go through google-cloud-storage (imported lazily, so the
core runs without it). Writes are atomic: a reader never sees a half-written file or object.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class StorageError(OSError):
    """A path could not be read or written; the message names the path and the cause."""


def is_gcs(path: str | os.PathLike) -> bool:
    return str(path).startswith("gs://")


def join(base: str | os.PathLike, *parts: str) -> str:
    base = str(base)
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return str(Path(base, *parts))


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise StorageError(f"{path}: file not found") from None
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}") from None


def read_text(path: str | os.PathLike) -> str:
    return read_bytes(path).decode("utf-8")


def exists(path: str | os.PathLike) -> bool:
    return Path(path).exists()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then os.replace: all or nothing."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
