"""core.storage against a real fake-gcs-server on 127.0.0.1 (google-cloud-storage via STORAGE_EMULATOR_HOST).

Faults are made at the HTTP level by a tiny proxy between the client and the server (injected 503/403
answers, request counting, going away), or by the upload's input stream failing midway; the storage
library itself is never mocked.
"""
from __future__ import annotations

import http.client
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pytest

from core import storage


@pytest.fixture(autouse=True)
def _isolated_storage(tmp_path, monkeypatch):
    """No FUSE mount unless a test makes one, a per-test cache, fast retries, a fresh in-process memo."""
    monkeypatch.setenv(storage.FUSE_ROOT_ENV, str(tmp_path / "no-fuse"))
    monkeypatch.setenv(storage.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(storage, "RETRY_INITIAL_S", 0.01)
    monkeypatch.setattr(storage, "RETRY_MAX_S", 0.05)
    monkeypatch.setattr(storage, "RETRY_TIMEOUT_S", 5.0)
    monkeypatch.setattr(storage, "_LOCAL_COPIES", {})


class FlakyProxy:
    """HTTP proxy in front of fake-gcs-server: records requests, answers some with injected statuses."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[Callable[[str, str], bool], int, int]] = []  # (match, status, times)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append((self.command, self.path))
                status = proxy._take_fault(self.command, self.path)
                if status:
                    payload = b'{"error": {"code": %d, "message": "injected"}}' % status
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, match: Callable[[str, str], bool], status: int, times: int = 1) -> None:
        self.faults.append((match, status, times))

    def _take_fault(self, method: str, path: str) -> int:
        for i, (match, status, times) in enumerate(self.faults):
            if times > 0 and match(method, path):
                self.faults[i] = (match, status, times - 1)
                return status
        return 0

    def media_reads(self) -> int:
        return sum(1 for m, p in self.requests if m == "GET" and "alt=media" in p)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(fake_gcs, monkeypatch):
    """A FlakyProxy in front of the fake server; the storage client talks to the proxy."""
    p = FlakyProxy(fake_gcs)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", p.url)
    yield p
    p.stop()


def _object_names(bucket: str) -> list[str]:
    return sorted(b.name for b in storage._client().list_blobs(bucket))


def is_media_get(method: str, path: str) -> bool:
    return method == "GET" and "alt=media" in path


# ---------------------------------------------------------------- round trips

def test_gcs_write_read_list_exists_round_trip(fake_gcs_bucket):
    base = f"gs://{fake_gcs_bucket}/run"
    storage.write_text_atomic(f"{base}/a.json", '{"ok": 1}')
    storage.write_bytes_atomic(f"{base}/ckpt/b.pth", b"\x00\x01")

    assert storage.read_text(f"{base}/a.json") == '{"ok": 1}'
    assert storage.read_bytes(f"{base}/ckpt/b.pth") == b"\x00\x01"
    assert storage.list_dir(base) == [f"{base}/a.json", f"{base}/ckpt"]
    assert storage.list_dir(f"{base}/") == storage.list_dir(base)
    assert storage.list_dir(f"{base}/empty") == []
    assert storage.exists(f"{base}/a.json") and storage.exists(f"{base}/ckpt")
    assert not storage.exists(f"{base}/missing.json")


def test_gcs_upload_leaves_no_temporary_objects(fake_gcs_bucket):
    storage.write_bytes_atomic(f"gs://{fake_gcs_bucket}/x/model.pth", b"w" * 1000)
    assert _object_names(fake_gcs_bucket) == ["x/model.pth"]


def test_list_dir_hides_in_flight_temporary_objects(fake_gcs_bucket, tmp_path):
    storage._client().bucket(fake_gcs_bucket).blob("d/.c.pth.abc123.tmp").upload_from_string(b"half")
    storage.write_bytes_atomic(f"gs://{fake_gcs_bucket}/d/c.pth", b"whole")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / ".c.pth.xyz.tmp").write_bytes(b"half")
    (tmp_path / "local" / "c.pth").write_bytes(b"whole")

    assert storage.list_dir(f"gs://{fake_gcs_bucket}/d") == [f"gs://{fake_gcs_bucket}/d/c.pth"]
    assert storage.list_dir(tmp_path / "local") == [str(tmp_path / "local" / "c.pth")]


def test_copy_to_gcs_and_to_local(fake_gcs_bucket, tmp_path):
    src = tmp_path / "export.pth"
    src.write_bytes(b"exported")
    storage.copy_to(src, f"gs://{fake_gcs_bucket}/model/export.pth")
    storage.copy_to(src, tmp_path / "out" / "export.pth")
    assert storage.read_bytes(f"gs://{fake_gcs_bucket}/model/export.pth") == b"exported"
    assert (tmp_path / "out" / "export.pth").read_bytes() == b"exported"


def test_delete_removes_object_and_tolerates_missing(fake_gcs_bucket):
    uri = f"gs://{fake_gcs_bucket}/old/checkpoint_epoch_5.pth"
    storage.write_bytes_atomic(uri, b"old")
    storage.delete(uri)
    storage.delete(uri)
    assert not storage.exists(uri)


# ---------------------------------------------------------------- FUSE and the local cache

def test_reads_prefer_fuse_mount_when_file_present(fake_gcs_bucket, tmp_path, monkeypatch):
    uri = f"gs://{fake_gcs_bucket}/img/c1_front.jpg"
    storage.write_bytes_atomic(uri, b"from-api")
    mount = tmp_path / "gcs"
    (mount / fake_gcs_bucket / "img").mkdir(parents=True)
    (mount / fake_gcs_bucket / "img" / "c1_front.jpg").write_bytes(b"from-fuse")
    monkeypatch.setenv(storage.FUSE_ROOT_ENV, str(mount))

    assert storage.read_bytes(uri) == b"from-fuse"
    assert storage.local_copy(uri) == str(mount / fake_gcs_bucket / "img" / "c1_front.jpg")


def test_reads_fall_back_to_api_when_mount_lacks_the_file(fake_gcs_bucket, tmp_path, monkeypatch):
    uri = f"gs://{fake_gcs_bucket}/img/c2_back.jpg"
    storage.write_bytes_atomic(uri, b"from-api")
    (tmp_path / "gcs" / fake_gcs_bucket).mkdir(parents=True)
    monkeypatch.setenv(storage.FUSE_ROOT_ENV, str(tmp_path / "gcs"))
    assert storage.read_bytes(uri) == b"from-api"


def test_local_copy_second_read_makes_no_request(fake_gcs_bucket, proxy):
    uri = f"gs://{fake_gcs_bucket}/img/c3_front.jpg"
    storage.write_bytes_atomic(uri, b"jpeg-bytes")
    first = storage.local_copy(uri)
    proxy.stop()  # the server is now unreachable: only the cache can answer
    second = storage.local_copy(uri)
    assert second == first
    assert Path(second).read_bytes() == b"jpeg-bytes"


def test_local_copy_new_process_reuses_cached_file_without_download(fake_gcs_bucket, proxy, monkeypatch):
    uri = f"gs://{fake_gcs_bucket}/img/c4_front.jpg"
    storage.write_bytes_atomic(uri, b"jpeg-bytes")
    first = storage.local_copy(uri)
    monkeypatch.setattr(storage, "_LOCAL_COPIES", {})  # as if a new process started
    before = proxy.media_reads()
    assert storage.local_copy(uri) == first
    assert proxy.media_reads() == before


def test_local_copy_fetches_again_when_object_replaced(fake_gcs_bucket, monkeypatch):
    uri = f"gs://{fake_gcs_bucket}/img/c5_front.jpg"
    storage.write_bytes_atomic(uri, b"version-1")
    first = storage.local_copy(uri)
    storage.write_bytes_atomic(uri, b"version-2")
    monkeypatch.setattr(storage, "_LOCAL_COPIES", {})
    second = storage.local_copy(uri)
    assert second != first
    assert Path(second).read_bytes() == b"version-2"


def test_local_copy_returns_local_paths_unchanged(tmp_path):
    assert storage.local_copy(str(tmp_path / "a.jpg")) == str(tmp_path / "a.jpg")


# ---------------------------------------------------------------- errors

def test_missing_bucket_is_a_one_line_error(fake_gcs):
    with pytest.raises(storage.StorageError) as err:
        storage.read_bytes("gs://no-such-bucket-xyz/splits.json")
    assert str(err.value) == "gs://no-such-bucket-xyz: bucket not found"


def test_missing_object_is_a_one_line_error(fake_gcs_bucket):
    with pytest.raises(storage.StorageError) as err:
        storage.read_bytes(f"gs://{fake_gcs_bucket}/nope/splits.json")
    assert str(err.value) == f"gs://{fake_gcs_bucket}/nope/splits.json: not found"


def test_missing_object_in_local_copy_is_a_one_line_error(fake_gcs_bucket):
    with pytest.raises(storage.StorageError, match=r"^gs://\S+/img/x\.jpg: not found$"):
        storage.local_copy(f"gs://{fake_gcs_bucket}/img/x.jpg")


def test_permission_denied_names_the_role_needed(fake_gcs_bucket, proxy):
    uri = f"gs://{fake_gcs_bucket}/secret.json"
    proxy.fail(is_media_get, 403)
    with pytest.raises(storage.StorageError) as err:
        storage.read_bytes(uri)
    assert str(err.value) == (f"{uri}: permission denied (check the job's service account has "
                              "roles/storage.objectAdmin)")


def test_transient_503_is_retried(fake_gcs_bucket, proxy):
    uri = f"gs://{fake_gcs_bucket}/splits.json"
    storage.write_text_atomic(uri, "{}")
    proxy.fail(is_media_get, 503, times=2)
    assert storage.read_text(uri) == "{}"
    assert proxy.media_reads() == 3


def test_persistent_503_gives_up_with_one_line_error(fake_gcs_bucket, proxy, monkeypatch):
    monkeypatch.setattr(storage, "RETRY_TIMEOUT_S", 0.3)
    uri = f"gs://{fake_gcs_bucket}/splits.json"
    storage.write_text_atomic(uri, "{}")
    proxy.fail(is_media_get, 503, times=10_000)
    with pytest.raises(storage.StorageError, match=r"^gs://\S+/splits\.json: [^\n]+$"):
        storage.read_text(uri)


# ---------------------------------------------------------------- interrupted uploads

class FailingStream(io.RawIOBase):
    """A file that raises after `limit` bytes, as when the disk or process dies mid-upload."""

    def __init__(self, path: Path, limit: int) -> None:
        self.fh = open(path, "rb")
        self.limit = limit
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or self.sent + n > self.limit:
            raise OSError("simulated failure mid-upload")
        data = self.fh.read(n)
        self.sent += len(data)
        return data

    def tell(self) -> int:
        return self.fh.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.fh.seek(pos, whence)

    def close(self) -> None:
        self.fh.close()
        super().close()


class ShortStream(FailingStream):
    """A file that ends early without an error: the upload completes with too few bytes."""

    def read(self, n: int = -1) -> bytes:
        n = self.limit - self.sent if n is None or n < 0 else min(n, self.limit - self.sent)
        data = self.fh.read(n)
        self.sent += len(data)
        return data


def _interrupt_uploads(monkeypatch, stream_cls, limit: int) -> None:
    monkeypatch.setattr(storage, "_open_for_upload", lambda path: stream_cls(path, limit))


def test_interrupted_upload_keeps_previous_object(fake_gcs_bucket, tmp_path, monkeypatch):
    uri = f"gs://{fake_gcs_bucket}/ckpt/last.pth"
    storage.write_bytes_atomic(uri, b"good" * 1000)
    new = tmp_path / "new.pth"
    new.write_bytes(b"n" * 100_000)
    _interrupt_uploads(monkeypatch, FailingStream, 50_000)

    with pytest.raises(storage.StorageError, match=r"^gs://\S+/ckpt/last\.pth: upload interrupted: "):
        storage.upload_file(new, uri)
    assert storage.read_bytes(uri) == b"good" * 1000
    assert _object_names(fake_gcs_bucket) == ["ckpt/last.pth"]


def test_interrupted_resumable_upload_keeps_previous_object(fake_gcs_bucket, tmp_path, monkeypatch):
    # Over 8 MiB the library switches to a resumable upload; small chunks mean several have landed
    # on the server when the stream fails.
    monkeypatch.setattr(storage, "UPLOAD_CHUNK_BYTES", 256 * 1024)
    uri = f"gs://{fake_gcs_bucket}/ckpt/big.pth"
    storage.write_bytes_atomic(uri, b"good")
    new = tmp_path / "big.pth"
    new.write_bytes(os.urandom(9 * 1024 * 1024))
    _interrupt_uploads(monkeypatch, FailingStream, 5 * 1024 * 1024)

    with pytest.raises(storage.StorageError, match="upload interrupted"):
        storage.upload_file(new, uri)
    assert storage.read_bytes(uri) == b"good"
    assert _object_names(fake_gcs_bucket) == ["ckpt/big.pth"]


def test_truncated_upload_stream_keeps_previous_object(fake_gcs_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "UPLOAD_CHUNK_BYTES", 1024 * 1024)
    uri = f"gs://{fake_gcs_bucket}/ckpt/last.pth"
    storage.write_bytes_atomic(uri, b"good")
    new = tmp_path / "new.pth"
    new.write_bytes(os.urandom(9 * 1024 * 1024))
    _interrupt_uploads(monkeypatch, ShortStream, 5 * 1024 * 1024 + 7)

    with pytest.raises(storage.StorageError, match=r"^gs://\S+/ckpt/last\.pth: upload interrupted: .*"
                       r"ended before 9437184 bytes"):
        storage.upload_file(new, uri)
    assert storage.read_bytes(uri) == b"good"
    assert _object_names(fake_gcs_bucket) == ["ckpt/last.pth"]


class AlteredStream(io.BytesIO):
    """The right number of bytes but not the file's: what the verification step exists to catch."""

    def __init__(self, path: Path, flip_at: int) -> None:
        data = bytearray(Path(path).read_bytes())
        data[flip_at] ^= 0xFF
        super().__init__(bytes(data))


def test_upload_that_differs_from_file_fails_verification_and_keeps_previous_object(
        fake_gcs_bucket, tmp_path, monkeypatch):
    uri = f"gs://{fake_gcs_bucket}/ckpt/last.pth"
    storage.write_bytes_atomic(uri, b"good")
    new = tmp_path / "new.pth"
    new.write_bytes(b"n" * 10_000)
    _interrupt_uploads(monkeypatch, AlteredStream, 1234)

    with pytest.raises(storage.StorageError, match=r"^gs://\S+/ckpt/last\.pth: upload failed verification "
                       r"3 times .*previous object is kept$"):
        storage.upload_file(new, uri)
    assert storage.read_bytes(uri) == b"good"
    assert _object_names(fake_gcs_bucket) == ["ckpt/last.pth"]


def test_large_upload_round_trips(fake_gcs_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "UPLOAD_CHUNK_BYTES", 1024 * 1024)
    data = os.urandom(9 * 1024 * 1024 + 123)
    src = tmp_path / "big.pth"
    src.write_bytes(data)
    storage.upload_file(src, f"gs://{fake_gcs_bucket}/big.pth")
    assert storage.read_bytes(f"gs://{fake_gcs_bucket}/big.pth") == data


# ---------------------------------------------------------------- local paths keep working

def test_local_list_dir_of_missing_directory_is_empty(tmp_path):
    assert storage.list_dir(tmp_path / "missing") == []


def test_local_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(storage.StorageError, match=r"missing\.json: file not found$"):
        storage.read_bytes(tmp_path / "missing.json")


# ---------------------------------------------------------------- output directories

def test_output_dirs_from_preset_win_over_vertex_env():
    env = {"AIP_CHECKPOINT_DIR": "gs://b/base/checkpoints/", "AIP_MODEL_DIR": "gs://b/base/model/",
           "AIP_TENSORBOARD_LOG_DIR": "gs://b/base/logs/"}
    assert storage.resolve_output_dirs("out", "gs://mine/ck", "gs://mine/m", "gs://mine/tb", env) == (
        "gs://mine/ck", "gs://mine/m", "gs://mine/tb")


def test_output_dirs_from_vertex_env_when_preset_leaves_them_empty():
    env = {"AIP_CHECKPOINT_DIR": "gs://b/base/checkpoints/", "AIP_MODEL_DIR": "gs://b/base/model/",
           "AIP_TENSORBOARD_LOG_DIR": "gs://b/base/logs/"}
    assert storage.resolve_output_dirs("out", "", "", "", env) == (
        "gs://b/base/checkpoints", "gs://b/base/model", "gs://b/base/logs")


def test_output_dirs_default_under_output_dir_and_tensorboard_off():
    assert storage.resolve_output_dirs("gs://b/run1", "", "", "", {}) == (
        "gs://b/run1/checkpoints", "gs://b/run1/model", "")
    assert storage.resolve_output_dirs("runs/x", "", "", "", {}) == (
        str(Path("runs/x/checkpoints")), str(Path("runs/x/model")), "")
