"""The trainer image: its Artifact Registry URI, its git-derived tag, and `docker build` / `docker push`.

Docker runs as a subprocess with argument lists; its output (stdout and stderr merged, in order) goes
to `on_line` one line at a time, so the CLI prints it and the TUI shows it live. Failures become one
CockpitError (exit EXIT_BUILD) saying what to do: docker missing, daemon down, registry auth missing
(with the `gcloud auth configure-docker` hint), or the build's own error line. A `cancel` Event lets
the TUI stop a running build or push.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from core.config import PRESETS_DIR, Config
from cockpit.errors import EXIT_BUILD, EXIT_CANCELLED, EXIT_USAGE, CockpitError

LineSink = Callable[[str], None]
# The build context: the repository root (the Dockerfile copies core/ and presets/ from there), whatever
# the working directory of the CLI or the TUI.
REPO_ROOT = PRESETS_DIR.parent
# Vertex AI runs x86-64 machines: build for that platform even on an ARM laptop.
PLATFORM = "linux/amd64"
_DAEMON_DOWN = ("cannot connect to the docker daemon", "is the docker daemon running", "error during connect")
_AUTH = ("unauthenticated", "denied", "no basic auth credentials", "unauthorized", "authentication required")
_NO_MANIFEST = ("no such manifest", "manifest unknown", "not found")


def registry_host(region: str) -> str:
    return f"{region}-docker.pkg.dev"


def image_uri(cfg: Config, tag: str) -> str:
    """`REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG` from cloud.region, cloud.project and cloud.image."""
    c = cfg.cloud
    if not c.project:
        raise CockpitError(f"{cfg.source or 'preset'}: cloud.project is empty; the image URI needs it",
                           EXIT_USAGE)
    if "/" not in c.image:
        raise CockpitError(f"{cfg.source or 'preset'}: cloud.image = {c.image!r} must be REPOSITORY/IMAGE",
                           EXIT_USAGE)
    return f"{registry_host(c.region)}/{c.project}/{c.image.strip('/')}:{tag}"


def git_tag(repo_dir: str | os.PathLike = ".") -> str:
    """The short commit SHA, plus `-dirty` when tracked or untracked files differ from it (the build
    context would then not match the commit); "nogit" outside a git work tree or without git."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True, text=True, check=False)
    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return "nogit"
        status = git("status", "--porcelain")
    except OSError:
        return "nogit"
    sha = head.stdout.strip()
    if not status.stdout.strip():
        return sha
    # A plain "-dirty" tag would be reused while the tree keeps changing, and a submit that finds the tag
    # in the registry would skip the build and run a stale image: name the uncommitted content instead.
    return f"{sha}-dirty-{_worktree_digest(repo_dir, git)}"


def _worktree_digest(repo_dir: str | os.PathLike, git) -> str:
    """8 hex digits that change whenever tracked changes or untracked files' contents change."""
    digest = hashlib.sha256(git("diff", "HEAD", "--binary").stdout.encode())
    untracked = git("ls-files", "--others", "--exclude-standard", "-z").stdout.split("\0")
    for name in sorted(n for n in untracked if n):
        digest.update(name.encode())
        try:
            digest.update((Path(repo_dir) / name).read_bytes())
        except OSError:
            pass  # vanished or unreadable: its name alone still changes the digest
    return digest.hexdigest()[:8]


def docker_executable() -> str:
    """The docker CLI on PATH, or CockpitError (EXIT_BUILD) saying it is missing."""
    exe = shutil.which("docker")
    if not exe:
        raise CockpitError("docker not found on PATH: install Docker (https://docs.docker.com/get-docker/) "
                           "or skip the build with --no-build", EXIT_BUILD)
    return exe


def build_image(uri: str, context_dir: str | os.PathLike, on_line: LineSink, dockerfile: str = "Dockerfile",
                cancel: threading.Event | None = None, target: str = "") -> None:
    """`docker build --platform linux/amd64 -f CONTEXT/DOCKERFILE [--target T] -t URI CONTEXT`, streamed
    to on_line. No target: the Dockerfile's last stage, the trainer; `serve` is the prediction server."""
    context = Path(context_dir)
    argv = [docker_executable(), "build", "--platform", PLATFORM, "-f", str(context / dockerfile),
            *(["--target", target] if target else []), "-t", uri, str(context)]
    _run_docker(argv, on_line, cancel, "build", uri)


def push_image(uri: str, on_line: LineSink, cancel: threading.Event | None = None) -> None:
    """`docker push URI`, streamed to on_line."""
    _run_docker([docker_executable(), "push", uri], on_line, cancel, "push", uri)


def build_and_push(uri: str, on_line: LineSink, cancel: threading.Event | None = None,
                   context_dir: str | os.PathLike = REPO_ROOT, target: str = "") -> bool:
    """Build the image from the repository root and push it, unless the registry already has this tag
    (the tag names the commit and uncommitted changes, so the same tag is the same image). Every line
    of docker's output, and a `$ docker ...` line before each step, goes to on_line. Returns whether it
    built. The CLI's `--submit` and the TUI's Build section and submit call this one function; `deploy`
    too, with target="serve" (the Dockerfile's serving stage)."""
    if image_exists(uri):
        on_line(f"image {uri} already in the registry; skipping build")
        return False
    on_line(f"$ docker build {'--target ' + target + ' ' if target else ''}-t {uri} {context_dir}")
    build_image(uri, context_dir, on_line, cancel=cancel, target=target)
    on_line(f"$ docker push {uri}")
    push_image(uri, on_line, cancel=cancel)
    on_line(f"pushed {uri}")
    return True


def image_exists(uri: str) -> bool:
    """Whether the registry already has this tag: `docker manifest inspect URI`.

    The registry is asked, not the local image store (`docker image inspect`): Vertex AI pulls from the
    registry, and a locally built tag that was never pushed must still be pushed.
    """
    argv = [docker_executable(), "manifest", "inspect", uri]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    except subprocess.TimeoutExpired:
        raise CockpitError(f"docker manifest inspect {uri} timed out after 120 s", EXIT_BUILD) from None
    if proc.returncode == 0:
        return True
    output = (proc.stderr + proc.stdout).strip()
    lowered = output.lower()
    if any(s in lowered for s in _DAEMON_DOWN + _AUTH):
        raise _classify(output.splitlines(), proc.returncode, "manifest inspect", uri)
    if any(s in lowered for s in _NO_MANIFEST):
        return False
    raise _classify(output.splitlines(), proc.returncode, "manifest inspect", uri)


def _run_docker(argv: list[str], on_line: LineSink, cancel: threading.Event | None, verb: str,
                uri: str) -> None:
    # A new session: a cancel signals docker's whole process group, not the cockpit.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, bufsize=1, errors="replace", start_new_session=True)
    cancelled = threading.Event()
    if cancel is not None:
        threading.Thread(target=_watch_cancel, args=(proc, cancel, cancelled), daemon=True).start()
    tail: deque[str] = deque(maxlen=40)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\r\n")
            tail.append(line)
            on_line(line)
        rc = proc.wait()
    except BaseException:
        # Ctrl-C (or any error) here: docker runs in its own session, so the terminal's SIGINT never
        # reached it; stop it ourselves rather than leave a build or push running behind us.
        _stop_group(proc)
        raise
    if cancelled.is_set():
        raise CockpitError(f"docker {verb} of {uri} cancelled", EXIT_CANCELLED)
    if rc != 0:
        raise _classify(list(tail), rc, verb, uri)


def _watch_cancel(proc: subprocess.Popen, cancel: threading.Event, cancelled: threading.Event) -> None:
    while proc.poll() is None:
        if cancel.wait(0.1):
            cancelled.set()
            _stop_group(proc)
            return


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM docker's process group, SIGKILL it if it has not gone 10 s later."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _classify(lines: list[str], rc: int, verb: str, uri: str) -> CockpitError:
    """docker's output -> the one-line error a user can act on."""
    text = "\n".join(lines).lower()
    host = uri.split("/", 1)[0]
    if any(s in text for s in _DAEMON_DOWN):
        return CockpitError("the Docker daemon is not running (docker said: Cannot connect to the Docker "
                            "daemon); start Docker and retry, or skip the build with --no-build", EXIT_BUILD)
    if any(s in text for s in _AUTH):
        return CockpitError(f"docker {verb} {uri}: not authenticated to {host}; run: gcloud auth "
                            f"configure-docker {host}", EXIT_BUILD)
    meaningful = [ln.strip() for ln in lines if ln.strip()]
    errors = [ln for ln in meaningful if "error" in ln.lower()]
    detail = (errors or meaningful or ["no output"])[-1]
    return CockpitError(f"docker {verb} failed (exit {rc}): {detail}", EXIT_BUILD)
