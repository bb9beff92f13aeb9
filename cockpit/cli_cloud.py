"""Headless cloud commands: `jobs`, `logs JOB [--follow]`, `cancel JOB`, `pull JOB [--to DIR]`.

Each `cmd_*` takes the parsed argparse namespace and returns the process exit code; errors print one
line on stderr. Which project and region: `--preset` (default: the `cloud` preset), then the environment
(GOOGLE_CLOUD_PROJECT). Job ids starting with `local-` belong to cockpit.local_runs.
"""
from __future__ import annotations

import os
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from cockpit.backend import JobInfo, LogLine, parse_metric
from cockpit.errors import (EXIT_INTERRUPTED, EXIT_MONITOR, EXIT_OK, EXIT_SUBMIT, EXIT_USAGE, CockpitError,
                            exit_code_for_state, one_line_errors)
DEFAULT_STATE_POLL_S = 15.0  # GetCustomJob while following; PSA_STATE_POLL_S overrides (tests)


# ----- formatting ------------------------------------------------------------------------------------------

def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def format_line(line: LogLine) -> str:
    """One printable line: metric events as a compact summary, other lines as they came."""
    stamp = line.timestamp.astimezone().strftime("%H:%M:%S ") if line.timestamp else ""
    where = f"[{line.source}] " if line.source and line.source not in ("workerpool0-0", "stdout") else ""
    level = f"{line.severity} " if line.severity in ("WARNING", "ERROR", "CRITICAL", "ALERT",
                                                     "EMERGENCY") else ""
    event = parse_metric(line)
    if event is not None and event.event == "epoch":
        text = (f"epoch {event.epoch} (phase {event.phase}): train_loss {_num(event.train_loss, '.4f')}  "
                f"val_loss {_num(event.val_loss, '.4f')}  val_qwk {_num(event.val_qwk, '.4f')}  "
                f"val_mae {_num(event.val_mae, '.3f')}  lr {_num(event.lr, '.2e')}  "
                f"{_num(event.samples_per_s, '.0f')} samples/s")
    elif event is not None:
        text = event.message or f"{event.event}: " + ", ".join(
            f"{k}={v}" for k, v in event.raw.items() if k not in ("event", "severity", "message"))
    else:
        text = line.text
    return f"{stamp}{level}{where}{text}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _gpu(info: JobInfo) -> str:
    if not info.accelerator_count:
        return "-"
    short = info.accelerator_type.removeprefix("NVIDIA_").removeprefix("TESLA_")
    return f"{info.accelerator_count} x {short}" + (f" x{info.replica_count}" if info.replica_count > 1 else "")


def jobs_table(jobs: list[JobInfo], now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    rows = [("ID", "NAME", "STATE", "MACHINE", "GPU", "AGE", "COST")]
    for j in sorted(jobs, key=lambda j: j.create_time or now, reverse=True):
        cost = j.cost_so_far(now)
        rows.append((j.id, j.name, j.state.removeprefix("JOB_STATE_"), j.machine_type or j.backend,
                     _gpu(j), _age(j.age_seconds(now)), f"${cost:.2f}" if cost is not None else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# ----- backends ---------------------------------------------------------------------------------------------

def vertex_backend(args: Any) -> Any:
    """The VertexBackend for --preset (default `cloud`), with --project/--region/env taking precedence."""
    from cockpit.presets import validate_preset
    from cockpit.vertex import VertexBackend

    cfg = validate_preset(getattr(args, "preset", None) or "cloud", list(getattr(args, "set", None) or []))
    project = (getattr(args, "project", None) or cfg.cloud.project or os.environ.get("GOOGLE_CLOUD_PROJECT", ""))
    region = getattr(args, "region", None) or cfg.cloud.region
    return VertexBackend(cfg, project=project, region=region)


def _local_backend() -> Any | None:
    try:
        from cockpit.local_runs import LocalBackend
    except ImportError:
        return None
    return LocalBackend()


def _is_local(job_id: str) -> bool:
    return job_id.startswith("local-")


def _backend_for(job_id: str, args: Any) -> Any:
    if _is_local(job_id):
        backend = _local_backend()
        if backend is None:
            raise CockpitError(f"{job_id}: local runs are not available in this installation")
        return backend
    return vertex_backend(args)


# ----- following a job -------------------------------------------------------------------------------------

def follow_job(backend: Any, job_id: str, out: TextIO | None = None, *, state_poll_s: float | None = None,
               stop: threading.Event | None = None, **tail_options: Any) -> int:
    """Print the job's log lines live until it ends; the exit code follows its final state.

    Ctrl-C stops following only: the job keeps running, and we say how to pick it up again.
    """
    out = out or sys.stdout
    if state_poll_s is None:
        state_poll_s = float(os.environ.get("PSA_STATE_POLL_S", DEFAULT_STATE_POLL_S))
    if state_poll_s < 1:
        tail_options.setdefault("check_interval_s", state_poll_s)
        tail_options.setdefault("drain_s", state_poll_s)
    # the tail's knobs exist only for Vertex; a local run follows its stdout file
    extra = dict(tail_options, state_poll_s=state_poll_s) if getattr(backend, "name", "") == "vertex" else {}
    try:
        for line in backend.logs(job_id, follow=True, stop=stop, **extra):
            print(format_line(line), file=out, flush=True)
        info = backend.get(job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} keeps running. Resume with: "
              f"psa-cockpit logs {job_id} --follow; cancel it with: psa-cockpit cancel {job_id}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except CockpitError as exc:
        if exc.exit_code != EXIT_SUBMIT:
            raise
        # The API kept failing after retries: that says nothing about the job, so never exit 1 ("failed").
        print(f"error: lost contact with job {job_id} while following it ({exc.message}); it may still be "
              f"running: psa-cockpit logs {job_id} --follow, or psa-cockpit cancel {job_id}", file=sys.stderr)
        return EXIT_MONITOR
    print(f"job {job_id} {info.state}", file=out, flush=True)
    if info.state == "JOB_STATE_FAILED" and info.error:
        print(f"error: {info.error}", file=sys.stderr)
    if not info.terminal:  # a user stop (TUI) before the end
        return EXIT_OK
    return exit_code_for_state(info.state)


# ----- commands ---------------------------------------------------------------------------------------------

@one_line_errors
def cmd_jobs(args: Any) -> int:
    """Table of this tool's Vertex jobs and local runs."""
    jobs: list[JobInfo] = []
    local = _local_backend()
    if local is not None:
        jobs += local.list()
    try:
        jobs += vertex_backend(args).list()
    except CockpitError as exc:
        if not jobs:
            raise
        print(f"note: Vertex AI jobs not listed: {exc.message}", file=sys.stderr)
    print(jobs_table(jobs) if jobs else "no jobs")
    return EXIT_OK


@one_line_errors
def cmd_logs(args: Any) -> int:
    """A job's logs; with --follow, live until it ends (exit code from its final state)."""
    job_id = args.job
    backend = _backend_for(job_id, args)
    if getattr(args, "follow", False):
        return follow_job(backend, job_id)
    for line in backend.logs(job_id, follow=False):
        print(format_line(line), flush=True)
    return EXIT_OK


@one_line_errors
def cmd_cancel(args: Any) -> int:
    """Ask the service to cancel a job; prints the state it reports back."""
    info = _backend_for(args.job, args).cancel(args.job)
    print(f"job {info.id} {info.state}")
    return EXIT_OK


@one_line_errors
def cmd_pull(args: Any) -> int:
    """Download a job's exported model (default ./models/<job>)."""
    job_id = args.job
    to = Path(getattr(args, "to", None) or Path("models") / job_id)
    if to.exists() and not to.is_dir():
        raise CockpitError(f"--to {to}: exists and is not a directory", EXIT_USAGE)
    path = _backend_for(job_id, args).pull(job_id, to)
    print(f"model of job {job_id} -> {path}")
    return EXIT_OK
