"""Copy directories to and from Cloud Storage: the data upload before a submit, the model pull after.

Re-uploading a data set is cheap: a file whose size and MD5 match the object already there is skipped
(one list request tells us both). Errors come back as one line naming the gs:// path.
"""
from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from core import storage
from cockpit import clients
from cockpit.errors import EXIT_SUBMIT, CockpitError


def parse_gs(uri: str) -> tuple[str, str]:
    """'gs://bucket/a/b' -> ('bucket', 'a/b') by core.storage's parser; a one-line CockpitError otherwise."""
    try:
        if storage.is_gcs(uri):
            return storage.split_gcs(uri)
    except storage.StorageError:
        pass
    raise CockpitError(f"{uri!r} is not a gs://bucket/path URI")


def _md5_b64(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def _error(action: str, uri: str, exc: Exception) -> CockpitError:
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.NotFound):
        bucket = parse_gs(uri)[0]
        return CockpitError(f"{action} {uri}: bucket gs://{bucket} or object not found", EXIT_SUBMIT)
    if isinstance(exc, gexc.Forbidden):
        return CockpitError(f"{action} {uri}: permission denied (check the account's Storage roles)",
                            EXIT_SUBMIT)
    message = getattr(exc, "message", None) or str(exc)
    return CockpitError(f"{action} {uri}: {message.splitlines()[0] if message else type(exc).__name__}",
                        EXIT_SUBMIT)


def files_inside(root: Path, candidates: list[Path]) -> list[Path]:
    """The candidates that are regular files really inside root (a symlink may not lead out of it).

    Raises CockpitError naming the first path that leaves root.
    """
    base = root.resolve()
    out = []
    for path in candidates:
        real = path.resolve()
        if not real.is_relative_to(base):
            raise CockpitError(f"{path}: leaves {root} (a symlink or ..); refusing to upload it")
        out.append(path)
    return out


def upload_dir(local_dir: str | os.PathLike, gs_uri: str,
               on_progress: Callable[[str, int, int], None] | None = None,
               client: Any = None, files: list[str | os.PathLike] | None = None) -> tuple[int, int]:
    """Upload the files under local_dir to gs_uri/<relative path>; returns (uploaded, skipped).

    `files` (paths relative to local_dir) limits the upload to those; by default every file under it.
    Either way nothing outside local_dir is read, symlinks included.
    on_progress(relative_path, done, total) is called after each file.
    """
    from google.api_core import exceptions as gexc

    root = Path(local_dir)
    if not root.is_dir():
        raise CockpitError(f"{root}: not a directory to upload")
    bucket_name, prefix = parse_gs(gs_uri)
    prefix = prefix.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    if files is None:
        base = root.resolve()
        chosen = [p for p in root.rglob("*") if p.is_file() and p.resolve().is_relative_to(base)]
    else:
        chosen = files_inside(root, [root / f for f in files])
        missing = [p for p in chosen if not p.is_file()]
        if missing:
            raise CockpitError(f"{missing[0]}: not found ({len(missing)} file(s) the splits name are missing)")
    files = sorted(set(chosen))
    client = client or clients.storage_client()
    try:
        bucket = client.bucket(bucket_name)
        existing = {b.name: (b.size, b.md5_hash) for b in client.list_blobs(bucket_name, prefix=prefix)}
        uploaded = skipped = 0
        for i, path in enumerate(files, 1):
            rel = path.relative_to(root).as_posix()
            name = prefix + rel
            if existing.get(name) == (path.stat().st_size, _md5_b64(path)):
                skipped += 1
            else:
                bucket.blob(name).upload_from_filename(str(path))
                uploaded += 1
            if on_progress:
                on_progress(rel, i, len(files))
    except gexc.GoogleAPICallError as exc:
        raise _error("upload to", gs_uri, exc) from None
    return uploaded, skipped


# Written last by a pull: the export's config is what marks a model folder complete (docs/design.md §3), so a
# pull interrupted midway never leaves a folder that looks like a finished model.
COMPLETE_MARKER = "psa_dual_branch_config.json"


def contained_target(root: Path, rel: str) -> Path | None:
    """root/rel resolved, or None when it would land outside root (an absolute name, `..`, a symlink).

    Object names come from a bucket other people can write to: `model//home/u/.bashrc` joined naively
    is the absolute path /home/u/.bashrc.
    """
    base = root.resolve()
    target = (base / rel).resolve()
    if rel.startswith("/") or target == base or not target.is_relative_to(base):
        return None
    return target


def download_prefix(gs_uri: str, local_dir: str | os.PathLike, client: Any = None) -> int:
    """Download every object under gs_uri into local_dir (keeping relative paths); returns the count.

    Every object's target is checked before anything is written: one name that would land outside
    local_dir refuses the whole pull, naming the object. The completeness marker is written last.
    """
    from google.api_core import exceptions as gexc

    bucket_name, prefix = parse_gs(gs_uri)
    prefix = prefix.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    root = Path(local_dir)
    client = client or clients.storage_client()
    try:
        planned = []
        for blob in client.list_blobs(bucket_name, prefix=prefix):
            rel = blob.name[len(prefix):]
            if not rel or rel.endswith("/"):  # the "folder" placeholder objects some tools create
                continue
            target = contained_target(root, rel)
            if target is None:
                raise CockpitError(f"{gs_uri}: refusing object gs://{bucket_name}/{blob.name} "
                                   f"(it would be written outside {root})", EXIT_SUBMIT)
            planned.append((blob, target))
        planned.sort(key=lambda item: item[1].name == COMPLETE_MARKER)
        for blob, target in planned:
            _download_atomic(blob, target)
    except gexc.GoogleAPICallError as exc:
        raise _error("download from", gs_uri, exc) from None
    return len(planned)


def _download_atomic(blob: Any, target: Path) -> None:
    """Download into a scratch folder, then publish with core.storage.copy_to (the one atomic-write
    helper): an interrupted pull never leaves half a model file at the target."""
    with tempfile.TemporaryDirectory(prefix="psa-pull-") as scratch:
        part = Path(scratch) / "part"
        blob.download_to_filename(str(part))
        storage.copy_to(part, target)
