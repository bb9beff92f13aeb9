"""Paths that may be local or gs://: one place that reads, writes and lists them.

Local paths use the filesystem. gs:// reads prefer the Vertex AI Cloud Storage FUSE mount
(/gcs/BUCKET/KEY, root overridable with PSA_GCS_FUSE_ROOT) when the file exists there, else go through
google-cloud-storage (imported lazily inside functions, so the core runs without it). Writes are
atomic: a reader never sees a half-written file or object, and an interrupted upload never replaces a
good object. Every failure is a StorageError whose message is one line naming the path.
"""
from __future__ import annotations

import base64
import contextlib
import os
import shutil
import stat
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

FUSE_ROOT_ENV = "PSA_GCS_FUSE_ROOT"
CACHE_DIR_ENV = "PSA_GCS_CACHE_DIR"

# Retry with exponential backoff for 429, 408, 5xx and connection errors: the storage library's own
# DEFAULT_RETRY predicate, with our delays. Tests shrink these to keep a retried call fast.
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 32.0
RETRY_TIMEOUT_S = 300.0
# Resumable uploads (objects over 8 MiB) go up in chunks this size, so a retry re-sends at most one.
UPLOAD_CHUNK_BYTES = 32 * 1024 * 1024
UPLOAD_ATTEMPTS = 3

_PERMISSION_HINT = "permission denied (check the job's service account has roles/storage.objectAdmin)"
_NO_LIBRARY = ("gs:// paths need google-cloud-storage: "
               "pip install 'psa-cockpit[gcs]' (or mount the bucket at /gcs)")


class StorageError(OSError):
    """A path could not be read or written; the message names the path and the cause."""


def is_gcs(path: str | os.PathLike) -> bool:
    return str(path).startswith("gs://")


def join(base: str | os.PathLike, *parts: str) -> str:
    base = str(base)
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return str(Path(base, *parts))


def split_gcs(uri: str) -> tuple[str, str]:
    """'gs://bucket/a/b' -> ('bucket', 'a/b'); the key may be '' (the bucket itself)."""
    rest = str(uri)[len("gs://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri}: not a gs://BUCKET/KEY path")
    return bucket, key


# ---------------------------------------------------------------- reads

def read_bytes(path: str | os.PathLike) -> bytes:
    if is_gcs(path):
        fuse = _fuse_file(str(path))
        if fuse is not None:
            return _read_local(fuse)
        return _gcs_read_bytes(str(path))
    return _read_local(path)


def read_text(path: str | os.PathLike) -> str:
    return read_bytes(path).decode("utf-8")


def exists(path: str | os.PathLike) -> bool:
    """A file, a directory, an object, or a gs:// prefix with at least one object under it.

    A missing bucket is not "False" but a StorageError: it is a configuration mistake to report.
    """
    if not is_gcs(path):
        return Path(path).exists()
    uri = str(path)
    bucket_name, key = split_gcs(uri)
    fuse = _fuse_path(bucket_name, key)
    if fuse is not None and fuse.exists():
        return True
    client = _client(uri)
    with _gcs_errors(uri, bucket_name):
        bucket = client.bucket(bucket_name)
        if not key.strip("/"):
            return bucket.exists(retry=_retry())
        if not key.endswith("/") and bucket.blob(key).exists(retry=_retry()):
            return True
        under = client.list_blobs(bucket_name, prefix=key.rstrip("/") + "/", max_results=1,
                                  retry=_retry())
        return any(True for _ in under)


def list_dir(prefix: str | os.PathLike) -> list[str]:
    """Full paths of the files and subdirectories directly under a local dir or gs:// prefix, sorted.

    A missing directory or empty prefix lists as []. In-flight atomic writes (hidden `.NAME.*.tmp`)
    are left out, so a reader scanning for checkpoints never picks one. gs:// listings go through the
    API, not the FUSE mount: it is the authoritative view of what was just uploaded.
    """
    if not is_gcs(prefix):
        base = Path(prefix)
        if not base.is_dir():
            return []
        return sorted(str(base / n) for n in os.listdir(base) if not _is_temp_name(n))
    uri = str(prefix)
    bucket_name, key = split_gcs(uri)
    key = key.strip("/")
    client = _client(uri)
    with _gcs_errors(uri, bucket_name):
        pages = client.list_blobs(bucket_name, prefix=f"{key}/" if key else "", delimiter="/",
                                  retry=_retry())
        names = [b.name for b in pages]  # iterating fills pages.prefixes as a side effect
        names += [p.rstrip("/") for p in pages.prefixes]
    base = f"gs://{bucket_name}"
    return sorted(f"{base}/{n}" for n in names
                  if n != key and not _is_temp_name(n.rsplit("/", 1)[-1]))


def local_copy(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """A local file path holding the content of `path` (for image decoders that want a file).

    Local paths come back as they are; a gs:// object on the FUSE mount comes back as its mount path.
    Otherwise the object is downloaded once into `cache_dir` (default $PSA_GCS_CACHE_DIR or
    ~/.cache/psa-cockpit/gcs) under BUCKET/KEY-dir/GENERATION.NAME, so a replaced object is fetched
    again. Within a process a second call makes no request at all; a new process makes one metadata
    request per object to learn the generation, and reuses the cached file when it matches.
    """
    if not is_gcs(path):
        return str(path)
    uri = str(path)
    fuse = _fuse_file(uri)
    if fuse is not None:
        return str(fuse)
    root = Path(cache_dir) if cache_dir else _default_cache_dir()
    memo_key = (uri, str(root))
    hit = _LOCAL_COPIES.get(memo_key)
    if hit is not None and os.path.exists(hit):
        return hit
    bucket_name, key = split_gcs(uri)
    client = _client(uri)
    with _gcs_errors(uri, bucket_name):
        blob = client.bucket(bucket_name).get_blob(key, retry=_retry())
        if blob is None:
            _raise_not_found(uri, bucket_name, client)
        target = _cache_target(root, bucket_name, key, blob.generation, uri)
        if not (target.is_file() and target.stat().st_size == blob.size):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            os.close(fd)
            try:
                # checksum="auto" (the default) verifies crc32c/md5 of what arrived.
                blob.download_to_filename(tmp, retry=_retry())
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
    _LOCAL_COPIES[memo_key] = str(target)
    return str(target)


# ---------------------------------------------------------------- writes

def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """All or nothing. Local: temp file in the same directory, fsync, os.replace. gs://: written to a
    local temp file, then upload_file (temp object, verify, copy to the final name)."""
    if is_gcs(path):
        fd, tmp = tempfile.mkstemp(prefix=".psa-upload.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            upload_file(tmp, str(path))
        finally:
            Path(tmp).unlink(missing_ok=True)
        return
    target = Path(path)
    fd, tmp = _temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temp_beside(target: Path) -> tuple[int, str]:
    """A new hidden temp file next to `target`, open for writing, with the mode the final file must have.

    mkstemp would make it 0600, and os.replace carries that mode over: a preset rewritten by the cockpit
    would become unreadable to the container's non-root user (the image copies presets/ as they are).
    So: an existing file keeps its mode; a new one gets the usual 0666 minus the umask.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        keep_mode = None
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        if keep_mode is not None:
            os.fchmod(fd, keep_mode)
        return fd, tmp
    raise StorageError(f"{target}: cannot create a temporary file beside it")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def copy_to(path_local: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy a local file to a local path or gs:// object, atomically either way."""
    if is_gcs(dest):
        upload_file(path_local, str(dest))
        return
    target = Path(dest)
    fd, tmp = _temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as out, open(path_local, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except FileNotFoundError:
        Path(tmp).unlink(missing_ok=True)
        raise StorageError(f"{path_local}: file not found") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def upload_file(local_path: str | os.PathLike, gs_uri: str) -> None:
    """Upload a local file to gs_uri so that the object at gs_uri is either the old one or all of the
    new one, never a truncated mix.

    Why a temporary object and not a generation precondition: a precondition guards against a
    concurrent writer, not against truncation, and neither emulator enforces preconditions on resumable
    uploads; fake-gcs-server even finalises a truncated resumable upload when its status is queried
    (docs/design.md §8), and a retried upload queries the status. So the bytes go to a uniquely named hidden
    object next to the target, which is checked (size and crc32c against the local file) before a
    server-side rewrite gives it the final name; object writes are atomic in GCS, so readers see the
    old or the new object. The temp object is deleted afterwards, also on failure.

    Retries: uploads and the rewrite use the library's DEFAULT_RETRY unconditionally (not the
    conditional-on-generation policy) because both are idempotent here: the temp name is unique, and
    rewriting the same verified source to the final name twice gives the same object.
    """
    src = Path(local_path)
    try:
        size = src.stat().st_size
        crc = _file_crc32c(src)
    except FileNotFoundError:
        raise StorageError(f"{local_path}: file not found") from None
    bucket_name, key = split_gcs(gs_uri)
    if not key or key.endswith("/"):
        raise StorageError(f"{gs_uri}: needs an object name, not a bucket or prefix")
    client = _client(gs_uri)
    bucket = client.bucket(bucket_name)
    parent, _, name = key.rpartition("/")
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        tmp_key = f"{parent + '/' if parent else ''}.{name}.{uuid.uuid4().hex[:12]}.tmp"
        tmp_blob = bucket.blob(tmp_key, chunk_size=UPLOAD_CHUNK_BYTES)
        try:
            with _gcs_errors(gs_uri, bucket_name, "upload interrupted"):
                with _open_for_upload(src) as fh:
                    try:
                        tmp_blob.upload_from_file(fh, size=size, checksum="crc32c", retry=_retry())
                    except ValueError:  # the library's word for "the stream ended before `size`"
                        raise StorageError(f"{gs_uri}: upload interrupted: {local_path} ended before "
                                           f"{size} bytes (changed during upload?)") from None
                tmp_blob.reload(retry=_retry())
                if tmp_blob.size != size or tmp_blob.crc32c != crc:
                    if attempt < UPLOAD_ATTEMPTS:
                        continue
                    raise StorageError(
                        f"{gs_uri}: upload failed verification {UPLOAD_ATTEMPTS} times (uploaded "
                        f"{tmp_blob.size} bytes crc32c {tmp_blob.crc32c}, file has {size} bytes "
                        f"crc32c {crc}); the previous object is kept")
                final = bucket.blob(key)
                token, _, _ = final.rewrite(tmp_blob, retry=_retry())
                while token is not None:
                    token, _, _ = final.rewrite(tmp_blob, token=token, retry=_retry())
                return
        finally:
            _delete_quietly(tmp_blob)


def delete(path: str | os.PathLike) -> None:
    """Delete a file or object; deleting one that is already gone is not an error (pruning after a
    restart may repeat)."""
    if not is_gcs(path):
        try:
            Path(path).unlink(missing_ok=True)
        except IsADirectoryError:
            raise StorageError(f"{path}: is a directory, not a file") from None
        except OSError as exc:
            raise StorageError(f"{path}: cannot delete: {exc.strerror}") from None
        return
    uri = str(path)
    bucket_name, key = split_gcs(uri)
    client = _client(uri)
    from google.api_core import exceptions as gexc

    with _gcs_errors(uri, bucket_name):
        try:
            client.bucket(bucket_name).blob(key).delete(retry=_retry())
        except gexc.NotFound:
            return


# ---------------------------------------------------------------- output directories

def resolve_output_dirs(output_dir: str, checkpoint_dir: str, model_dir: str, tensorboard_dir: str,
                        env: Mapping[str, str] = os.environ) -> tuple[str, str, str]:
    """(checkpoint_dir, model_dir, tensorboard_dir): the preset's value when set, else Vertex AI's
    AIP_CHECKPOINT_DIR / AIP_MODEL_DIR / AIP_TENSORBOARD_LOG_DIR (docs/design.md §5), else
    <output_dir>/checkpoints and <output_dir>/model; tensorboard "" means off."""
    def pick(value: str, env_key: str, default: str) -> str:
        chosen = value or env.get(env_key, "") or default
        return chosen.rstrip("/") if chosen not in ("", "/") else chosen

    return (pick(checkpoint_dir, "AIP_CHECKPOINT_DIR", join(output_dir, "checkpoints")),
            pick(model_dir, "AIP_MODEL_DIR", join(output_dir, "model")),
            pick(tensorboard_dir, "AIP_TENSORBOARD_LOG_DIR", ""))


# ---------------------------------------------------------------- internals

_LOCAL_COPIES: dict[tuple[str, str], str] = {}
_CLIENTS: dict[tuple[int, str | None], Any] = {}
_CLIENT_LOCK = threading.Lock()


def _read_local(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise StorageError(f"{path}: file not found") from None
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}") from None


def _fuse_path(bucket: str, key: str) -> Path | None:
    """/gcs/BUCKET/KEY, or None when there is no mount or the name would leave the bucket's folder.

    `gs://b//etc/x` joined naively is /etc/x, and a bucket named `..` climbs out of the mount: names
    come from splits files and presets, so they are untrusted (such a key is read through the API).
    """
    root = os.environ.get(FUSE_ROOT_ENV, "/gcs")
    if not root:
        return None
    bucket_dir = Path(root, bucket)
    path = Path(root, bucket, key) if key else bucket_dir
    if not _inside(path, Path(root)) or (key and not _inside(path, bucket_dir)):
        return None
    return path


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` (resolved, symlinks followed) is `folder` or under it."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _cache_target(root: Path, bucket: str, key: str, generation: Any, uri: str) -> Path:
    """root/BUCKET/KEY-dir/GENERATION.NAME, refused (StorageError naming the object) when a key with
    `../` or a leading `/` would put it outside root/BUCKET."""
    key_path = Path(key)
    bucket_dir = root / bucket
    target = bucket_dir / key_path.parent / f"{generation}.{key_path.name}"
    if key.startswith("/") or not key_path.name or not _inside(target, bucket_dir) \
            or not _inside(bucket_dir, root):
        raise StorageError(f"{uri}: object name would leave the download cache {root}; refusing it")
    return target


def _fuse_file(uri: str) -> Path | None:
    """The object's path on the FUSE mount when it is there as a file, else None."""
    bucket, key = split_gcs(uri)
    path = _fuse_path(bucket, key) if key else None
    return path if path is not None and path.is_file() else None


def _is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _default_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "psa-cockpit", "gcs")


def _open_for_upload(path: Path) -> BinaryIO:
    """The stream an upload reads; a seam so a test can make it fail midway."""
    return open(path, "rb")


def _file_crc32c(path: Path) -> str:
    """Base64 of the big-endian CRC32C, the form GCS reports in object metadata."""
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


def _retry():
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_delay(initial=RETRY_INITIAL_S, maximum=RETRY_MAX_S,
                                    multiplier=2.0).with_timeout(RETRY_TIMEOUT_S)


def _client(uri: str = "gs://") -> Any:
    """One google-cloud-storage client per process and emulator setting.

    With STORAGE_EMULATOR_HOST set (tests, local emulators) the library sends every request there; we
    add anonymous credentials and project "test" so no real credentials are looked up. Keyed by pid
    because a client's HTTP connection pool must not be shared across fork (DataLoader workers).
    """
    emulator = os.environ.get("STORAGE_EMULATOR_HOST") or None
    cache_key = (os.getpid(), emulator)
    with _CLIENT_LOCK:
        client = _CLIENTS.get(cache_key)
        if client is not None:
            return client
        try:
            from google.cloud import storage as gcs
        except ImportError:
            raise StorageError(f"{uri}: {_NO_LIBRARY}") from None
        if emulator:
            from google.auth.credentials import AnonymousCredentials

            client = gcs.Client(project="test", credentials=AnonymousCredentials())
        else:
            from google.auth import exceptions as auth_exceptions

            try:
                client = gcs.Client()
            except auth_exceptions.DefaultCredentialsError:
                raise StorageError(
                    f"{uri}: no Google Cloud credentials found (run `gcloud auth application-default "
                    "login`, or run on Vertex AI)") from None
        _CLIENTS[cache_key] = client
        return client


def client() -> Any:
    """The process's google-cloud-storage client (see _client): the cockpit's uploads, pulls and reads
    use this same one, so the endpoint (STORAGE_EMULATOR_HOST only) and credentials rules live here."""
    return _client()


def _gcs_read_bytes(uri: str) -> bytes:
    bucket_name, key = split_gcs(uri)
    if not key or key.endswith("/"):
        raise StorageError(f"{uri}: needs an object name, not a bucket or prefix")
    client = _client(uri)
    with _gcs_errors(uri, bucket_name):
        return client.bucket(bucket_name).blob(key).download_as_bytes(retry=_retry())


def _raise_not_found(uri: str, bucket_name: str, client: Any) -> None:
    """Tell a missing bucket from a missing object (one extra request, only on the error path)."""
    try:
        bucket_there = client.bucket(bucket_name).exists(retry=_retry())
    except Exception:  # noqa: BLE001 - the original "not found" is the error to report
        bucket_there = True
    if not bucket_there:
        raise StorageError(f"gs://{bucket_name}: bucket not found")
    raise StorageError(f"{uri}: not found")


@contextlib.contextmanager
def _gcs_errors(uri: str, bucket_name: str, what: str = "") -> Iterator[None]:
    """Turn library, HTTP and I/O exceptions into one-line StorageErrors. Messages are built from the
    status code and exception type only, never from request details, so no credential can leak."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exceptions
    from google.resumable_media import common as media_common

    try:
        yield
    except StorageError:
        raise
    except gexc.NotFound:
        _raise_not_found(uri, bucket_name, _client(uri))
    except (gexc.Forbidden, gexc.Unauthorized):
        raise StorageError(f"{uri}: {_PERMISSION_HINT}") from None
    except gexc.GoogleAPICallError as exc:
        raise StorageError(f"{uri}: Cloud Storage error {exc.code} ({type(exc).__name__})") from None
    except gexc.RetryError:
        raise StorageError(f"{uri}: Cloud Storage kept failing; gave up after retrying for "
                           f"{RETRY_TIMEOUT_S:.0f} s") from None
    except media_common.DataCorruption:
        raise StorageError(f"{uri}: checksum mismatch in transfer") from None
    except media_common.InvalidResponse as exc:
        status = getattr(exc.response, "status_code", "?")
        if status in (401, 403):
            raise StorageError(f"{uri}: {_PERMISSION_HINT}") from None
        raise StorageError(f"{uri}: Cloud Storage error {status}") from None
    except auth_exceptions.GoogleAuthError as exc:
        raise StorageError(f"{uri}: authentication failed ({type(exc).__name__})") from None
    except OSError as exc:  # requests' ConnectionError is an OSError; so is a failing local stream
        prefix = f"{what}: " if what else ""
        raise StorageError(f"{uri}: {prefix}{type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else 'I/O error'}") from None


def _delete_quietly(blob: Any) -> None:
    """Best-effort removal of a temp object: a leftover hidden .tmp object is harmless (list_dir skips
    it), while raising here would hide the error that brought us here."""
    try:
        blob.delete(retry=_retry())
    except Exception:  # noqa: BLE001
        pass
