"""Training runs as local subprocesses, behind the same `JobBackend` interface as Vertex AI jobs.

Each run gets a directory `<runs_dir>/<id>/` holding:
  run.json     the run's metadata (JobInfo fields, pid, exit code): `list` and `get` read it, so runs
               survive a cockpit restart;
  stdout.log   everything the trainer printed (stdout and stderr, in order);
  training.log, config.toml, checkpoints/, model/ ...   what the trainer itself writes (--output-dir).

The child's stdout/stderr go straight into stdout.log (a file, not a pipe): the OS does the copying,
so a run keeps going (and keeps its log) when the cockpit quits, and `logs()` simply follows the file.
States use Vertex AI's names so callers treat local and cloud runs alike.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from core.config import resolve_preset_path, ConfigError
from core.storage import write_bytes_atomic
from cockpit.backend import JobInfo, JobState, LogLine, parse_metric
from cockpit.errors import CockpitError

RUNNING, SUCCEEDED, FAILED, CANCELLED = JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
EXIT_BAD_INPUT, EXIT_PREEMPTED = 2, 75  # core.train's codes
META, STDOUT = "run.json", "stdout.log"
_DATETIME_FIELDS = ("create_time", "start_time", "end_time")
# The trainer LocalBackend starts unless given a command_prefix (module-level so tests can swap it).
DEFAULT_TRAINER = [sys.executable, "-m", "core.train"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id(now: datetime | None = None) -> str:
    """'local-YYYYmmdd-HHMMSS-xxxx' (UTC; the random suffix keeps two runs in one second apart)."""
    return f"local-{(now or _now()):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def state_for_exit(rc: int, cancel_requested: bool) -> tuple[str, str]:
    """The trainer's exit code -> (Vertex state name, one-line error)."""
    if cancel_requested:
        return CANCELLED, ""
    if rc == 0:
        return SUCCEEDED, ""
    if rc == EXIT_BAD_INPUT:
        return FAILED, "bad input (exit 2): see the error line in the log"
    if rc == EXIT_PREEMPTED:
        return FAILED, "stopped by a signal after saving a checkpoint (exit 75); resume with output.resume=auto"
    if rc < 0:
        return FAILED, f"killed by signal {-rc}"
    return FAILED, f"trainer exited with code {rc}"


class LocalBackend:
    """`JobBackend` for runs of `python -m core.train` on this machine."""

    name = "local"

    def __init__(self, runs_dir: str | os.PathLike = Path("outputs/runs"),
                 command_prefix: list[str] | None = None, cancel_grace_s: float = 30.0):
        """`command_prefix` replaces DEFAULT_TRAINER, `python -m core.train` (tests use a fake trainer).
        `cancel_grace_s`: time between SIGTERM (the trainer saves a checkpoint) and SIGKILL."""
        self.runs_dir = Path(runs_dir)
        self.command_prefix = list(command_prefix or DEFAULT_TRAINER)
        self.cancel_grace_s = cancel_grace_s
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    # -- submit ---------------------------------------------------------------------------------------

    def submit(self, preset_path: Path, overrides: list[str] | None = None, **options: Any) -> JobInfo:
        """Start the trainer on `preset_path` with `--set` overrides; returns at once (state RUNNING).

        options: `name` (display name, default the preset's stem), `env` (extra environment variables).
        """
        try:
            preset = resolve_preset_path(preset_path)
        except ConfigError as exc:
            raise CockpitError(str(exc)) from None
        job_id = new_run_id()
        run_dir = (self.runs_dir / job_id).resolve()
        run_dir.mkdir(parents=True)
        argv = [*self.command_prefix, "--preset", str(preset)]
        for item in overrides or []:
            argv += ["--set", item]
        argv += ["--output-dir", str(run_dir)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIP_")}  # not a Vertex job
        env.update(PYTHONUNBUFFERED="1", **options.get("env", {}))
        info = JobInfo(id=job_id, name=options.get("name") or preset.stem, state=RUNNING, backend="local",
                       create_time=_now(), output_dir=str(run_dir), preset=str(preset), hourly_cost_usd=0.0)
        with open(run_dir / STDOUT, "wb") as out:
            try:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=os.getcwd(), start_new_session=True)
            except OSError as exc:
                shutil.rmtree(run_dir, ignore_errors=True)
                raise CockpitError(f"cannot start the trainer {argv[0]}: {exc.strerror}") from None
        info.start_time = _now()
        self._write(info, pid=proc.pid, argv=argv, overrides=list(overrides or []))
        with self._lock:
            self._procs[job_id] = proc
        threading.Thread(target=self._wait, args=(job_id, proc), daemon=True,
                         name=f"wait-{job_id}").start()
        return info

    def _wait(self, job_id: str, proc: subprocess.Popen) -> None:
        rc = proc.wait()
        self._finish(job_id, rc)

    def _finish(self, job_id: str, rc: int) -> None:
        info, extra = self._read(job_id)
        if info.terminal and extra.get("exit_code") is not None:
            return
        state, error = state_for_exit(rc, bool(extra.get("cancel_requested")))
        if state == FAILED and rc == EXIT_BAD_INPUT:
            error = self._last_error_line(job_id) or error
        info.state, info.error, info.end_time = state, error, _now()
        self._write(info, **{**extra, "exit_code": rc})

    # -- queries --------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobInfo:
        """The run's current JobInfo; a run whose process ended unseen is settled from its log."""
        info, extra = self._read(job_id)
        if info.state == RUNNING and not self._alive(job_id, extra):
            with self._lock:
                proc = self._procs.get(job_id)
            if proc is not None:
                self._finish(job_id, proc.wait())
            else:
                self._settle_orphan(info, extra)
            info, _ = self._read(job_id)
        return info

    def list(self) -> list[JobInfo]:
        """Every run under runs_dir, newest first."""
        if not self.runs_dir.is_dir():
            return []
        runs = []
        for meta in self.runs_dir.glob(f"local-*/{META}"):
            try:
                runs.append(self.get(meta.parent.name))
            except CockpitError:
                continue  # a half-written or foreign directory
        return sorted(runs, key=lambda r: r.create_time or datetime.min.replace(tzinfo=timezone.utc),
                      reverse=True)

    def exit_code(self, job_id: str) -> int | None:
        """The trainer's exit code once the run has ended and a cockpit saw it end, else None."""
        self.get(job_id)
        code = self._read(job_id)[1].get("exit_code")
        return code if isinstance(code, int) else None

    def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 0.1) -> JobInfo:
        """Block until the run ends (or `timeout` passes); returns its JobInfo."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.terminal or (deadline is not None and time.monotonic() > deadline):
                return info
            time.sleep(poll_s)

    # -- cancel ---------------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobInfo:
        """SIGTERM to the run's process group (the trainer saves a checkpoint and exits), SIGKILL after
        the grace period; the run ends JOB_STATE_CANCELLED. A finished run is returned unchanged."""
        info, extra = self._read(job_id)
        if info.terminal:
            return info
        self._write(info, **{**extra, "cancel_requested": True})
        pid = extra.get("pid")
        if pid and self._alive(job_id, extra):
            _killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.cancel_grace_s
            while self._alive(job_id, extra) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._alive(job_id, extra):
                _killpg(pid, signal.SIGKILL)
        with self._lock:
            proc = self._procs.get(job_id)
        if proc is not None:
            self._finish(job_id, proc.wait())
        else:
            info, extra = self._read(job_id)
            if not info.terminal:
                info.state, info.end_time = CANCELLED, _now()
                self._write(info, **extra)
        return self._read(job_id)[0]

    # -- logs and outputs -----------------------------------------------------------------------------

    def logs(self, job_id: str, follow: bool = False, stop: threading.Event | None = None,
             poll_s: float = 0.1) -> Iterator[LogLine]:
        """The run's output lines; metric lines carry their parsed JSON in `payload`.

        With `follow`, keeps reading until the run ends (and its last line is read) or `stop` is set.
        """
        self._read(job_id)  # unknown id -> CockpitError
        path = self.runs_dir / job_id / STDOUT
        buffer = b""
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(65536)
                if chunk:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        yield to_log_line(raw.decode("utf-8", errors="replace"))
                    continue
                if not follow or (stop is not None and stop.is_set()):
                    break
                if self.get(job_id).terminal:
                    rest = fh.read()  # the last lines may land between the read and the state check
                    if not rest:
                        break
                    buffer += rest
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        yield to_log_line(raw.decode("utf-8", errors="replace"))
                    continue
                if stop is not None:
                    stop.wait(poll_s)
                else:
                    time.sleep(poll_s)
        if buffer.strip():
            yield to_log_line(buffer.decode("utf-8", errors="replace"))

    def pull(self, job_id: str, to: Path) -> Path:
        """Copy the run's exported model directory into `to`; returns `to`."""
        info = self.get(job_id)
        model_dir = self._model_dir(job_id, Path(info.output_dir))
        if not model_dir.is_dir() or not any(model_dir.iterdir()):
            raise CockpitError(f"{job_id}: no exported model in {model_dir} (state {info.state})")
        to = Path(to)
        to.mkdir(parents=True, exist_ok=True)
        shutil.copytree(model_dir, to, dirs_exist_ok=True)
        return to

    def _model_dir(self, job_id: str, run_dir: Path) -> Path:
        # The trainer's `done` event names the export (a preset may set output.model_dir elsewhere).
        for line in self.logs(job_id):
            if line.payload and line.payload.get("event") == "done" and line.payload.get("export_path"):
                path = Path(line.payload["export_path"])
                return path if path.is_dir() else path.parent
        return run_dir / "model"

    # -- metadata -------------------------------------------------------------------------------------

    def _read(self, job_id: str) -> tuple[JobInfo, dict]:
        path = self.runs_dir / job_id / META
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            known = ", ".join(sorted(p.name for p in self.runs_dir.glob("local-*"))[-3:]) \
                if self.runs_dir.is_dir() else ""
            raise CockpitError(f"unknown local run '{job_id}' (no {path}"
                               f"{'; recent: ' + known if known else ''})") from None
        except (OSError, ValueError) as exc:
            raise CockpitError(f"{path}: unreadable run metadata: {exc}") from None
        names = {f.name for f in fields(JobInfo)}
        info_raw = {k: v for k, v in raw.items() if k in names}
        for key in _DATETIME_FIELDS:
            if info_raw.get(key):
                info_raw[key] = datetime.fromisoformat(info_raw[key])
        extra = {k: v for k, v in raw.items() if k not in names}
        return JobInfo(**info_raw), extra

    def _write(self, info: JobInfo, **extra: Any) -> None:
        raw = asdict(info)
        for key in _DATETIME_FIELDS:
            if raw[key] is not None:
                raw[key] = raw[key].isoformat()
        raw.update(extra)
        write_bytes_atomic(self.runs_dir / info.id / META, json.dumps(raw, indent=2).encode("utf-8"))

    def _alive(self, job_id: str, extra: dict) -> bool:
        with self._lock:
            proc = self._procs.get(job_id)
        if proc is not None:
            return proc.poll() is None
        pid = extra.get("pid")
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # The pid may have been reused by another program: check it still names this run (Linux /proc).
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists():
            try:
                return job_id in cmdline.read_bytes().decode("utf-8", errors="replace")
            except OSError:
                return False
        return True

    def _settle_orphan(self, info: JobInfo, extra: dict) -> None:
        """The process ended while no cockpit was waiting for it: its exit code is lost, so judge by
        the last event it printed."""
        last = None
        for line in self.logs(info.id):
            if line.payload and line.payload.get("event") in ("done", "error", "preempted"):
                last = line.payload["event"]
        if extra.get("cancel_requested"):
            info.state = CANCELLED
        elif last == "done":
            info.state = SUCCEEDED
        else:
            info.state = FAILED
            info.error = {"error": self._last_error_line(info.id),
                          "preempted": "stopped by a signal after saving a checkpoint"}.get(
                last, "") or "ended while no cockpit was watching (exit code unknown)"
        info.end_time = _now()
        self._write(info, **extra)

    def _last_error_line(self, job_id: str) -> str:
        last = ""
        for line in self.logs(job_id):
            if line.severity in ("ERROR", "CRITICAL") or line.text.startswith("error:"):
                last = line.text.strip().removeprefix("error:").strip()  # callers add their own "error: "
        return last[:300]


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session=True made the trainer its own group leader
    except (ProcessLookupError, PermissionError):
        pass


def to_log_line(text: str) -> LogLine:
    """One output line -> LogLine; a metric line's JSON becomes `payload`, its severity and time kept."""
    text = text.rstrip("\r")
    event = parse_metric(text)
    if event is None:
        return LogLine(text=text, severity="DEFAULT", source="stdout")
    payload = event.raw
    stamp = payload.get("time")
    when = datetime.fromtimestamp(stamp, timezone.utc) if isinstance(stamp, (int, float)) else None
    return LogLine(text=str(payload.get("message", text)), severity=str(payload.get("severity", "INFO")),
                   timestamp=when, payload=payload, source="stdout")
