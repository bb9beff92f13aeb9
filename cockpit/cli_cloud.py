"""Headless cloud commands: `jobs`, `logs JOB [--follow]`, `cancel JOB`, `pull JOB [--to DIR]`.

Each `cmd_*` takes the parsed argparse namespace and returns the process exit code; errors print one
line on stderr (cockpit.cli turns a raised CockpitError into that line and its exit code; `--debug` adds the
traceback). Which backend, project and region: cockpit.jobs (`--project`, then `--preset`'s, default the
`cloud` preset, then GOOGLE_CLOUD_PROJECT). Job ids starting with `local-` belong to cockpit.local_runs.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from cockpit.backend import JobState, LogLine, parse_metric
from cockpit.errors import (EXIT_INTERRUPTED, EXIT_MONITOR, EXIT_OK, EXIT_SUBMIT, EXIT_USAGE, CockpitError,
                            exit_code_for_state)


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
        of = f"/{event.epochs}" if event.epochs is not None else ""
        text = (f"epoch {event.epoch}{of} (phase {event.phase}): train_loss {_num(event.train_loss, '.4f')}  "
                f"val_loss {_num(event.val_loss, '.4f')}  val_qwk {_num(event.val_qwk, '.4f')}  "
                f"val_mae {_num(event.val_mae, '.3f')}  lr {_num(event.lr, '.2e')}  "
                f"{_num(event.samples_per_s, '.0f')} samples/s")
    elif event is not None:
        text = event.message or f"{event.event}: " + ", ".join(
            f"{k}={v}" for k, v in event.raw.items() if k not in ("event", "severity", "message"))
    else:
        text = line.text
    return f"{stamp}{level}{where}{text}"


# ----- backends ---------------------------------------------------------------------------------------------

def _target_config(args: Any) -> Any:
    """The preset that names project and region: --preset, default `cloud` (with --set applied)."""
    from cockpit.presets import validate_preset

    return validate_preset(getattr(args, "preset", None) or "cloud", list(getattr(args, "set", None) or []))


def _backend_for(job_id: str, args: Any) -> Any:
    from cockpit.jobs import Backends, is_local

    cfg = None if is_local(job_id) else _target_config(args)
    return Backends().for_job(job_id, cfg, getattr(args, "project", None), getattr(args, "region", None))


# ----- following a job -------------------------------------------------------------------------------------

def follow_job(backend: Any, job_id: str, out: TextIO | None = None, *, state_poll_s: float | None = None,
               stop: threading.Event | None = None, **tail_options: Any) -> int:
    """Print the job's log lines live until it ends; the exit code follows its final state.

    Ctrl-C stops following only: the job keeps running, and we say how to pick it up again.
    """
    out = out or sys.stdout
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
    if info.state == JobState.FAILED and info.error:
        print(f"error: {info.error}", file=sys.stderr)
    if not info.terminal:  # a user stop (TUI) before the end
        return EXIT_OK
    return exit_code_for_state(info.state)


# ----- commands ---------------------------------------------------------------------------------------------

def cmd_jobs(args: Any) -> int:
    """Table of this tool's Vertex jobs and local runs."""
    from cockpit.jobs import Backends, jobs_table

    backends = Backends()
    cfg = _target_config(args)
    project, region = getattr(args, "project", None), getattr(args, "region", None)
    jobs = backends.local.list()
    try:
        jobs += backends.require_vertex(cfg, project, region).list()
    except CockpitError as exc:
        if not jobs:
            raise
        print(f"note: Vertex AI jobs not listed: {exc.message}", file=sys.stderr)
    print(jobs_table(jobs) if jobs else "no jobs")
    return EXIT_OK


def cmd_logs(args: Any) -> int:
    """A job's logs; with --follow, live until it ends (exit code from its final state)."""
    job_id = args.job
    backend = _backend_for(job_id, args)
    if getattr(args, "follow", False):
        return follow_job(backend, job_id)
    for line in backend.logs(job_id, follow=False):
        print(format_line(line), flush=True)
    return EXIT_OK


def cmd_cancel(args: Any) -> int:
    """Ask the service to cancel a job; prints the state it reports back."""
    info = _backend_for(args.job, args).cancel(args.job)
    print(f"job {info.id} {info.state}")
    return EXIT_OK


def cmd_pull(args: Any) -> int:
    """Download a job's exported model (default ./models/<job>)."""
    from cockpit.jobs import pull_model

    job_id = args.job
    to = Path(getattr(args, "to", None) or Path("models") / job_id)
    if to.exists() and not to.is_dir():
        raise CockpitError(f"--to {to}: exists and is not a directory", EXIT_USAGE)
    backend = _backend_for(job_id, args)
    path = pull_model(backend, backend.get(job_id), to)
    print(f"model of job {job_id} -> {path}")
    return EXIT_OK
