"""Which backend a job lives on, which Google Cloud project, and how a job shows as a row: one place for
the headless CLI (`psa-cockpit jobs|logs|cancel|pull`) and the TUI's Jobs and Run/Logs sections.

Project resolution, everywhere: `--project` (CLI only), then the preset's `cloud.project`, then the
environment's GOOGLE_CLOUD_PROJECT. The endpoint each client talks to is cockpit.clients' business.
Job ids starting with `local-` are local runs (cockpit.local_runs); every other id is a Vertex AI job.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cockpit.backend import JobInfo, short_state
from cockpit.errors import CockpitError

NO_PROJECT_NOTE = ("Vertex AI: set cloud.project in the preset (or GOOGLE_CLOUD_PROJECT) to see cloud jobs; "
                   "showing local runs only")
DEFAULT_RUNS_DIR = Path("outputs/runs")


def resolve_project(cfg: Any, project: str | None = None) -> str:
    """--project, else the preset's cloud.project, else GOOGLE_CLOUD_PROJECT; "" when none is set."""
    from_preset = cfg.cloud.project if cfg is not None else ""
    return project or from_preset or os.environ.get("GOOGLE_CLOUD_PROJECT", "")


def is_local(job_id: str) -> bool:
    return job_id.startswith("local-")


class Backends:
    """The local backend (always) and the Vertex AI backend of the preset's project and region (built on
    first use and kept while project, region and endpoints stay the same). Vertex is reached from worker
    threads only: building it imports the GAPIC client (about a second)."""

    def __init__(self, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR):
        from cockpit.local_runs import LocalBackend

        self.local = LocalBackend(runs_dir)
        self._vertex: Any = None
        self._vertex_key: tuple | None = None
        self._lock = threading.Lock()

    def vertex(self, cfg: Any, project: str | None = None, region: str | None = None) -> Any:
        """The VertexBackend for the project (see resolve_project) and region; None without a project."""
        from cockpit import clients

        project = resolve_project(cfg, project)
        if not project:
            return None
        region = region or (cfg.cloud.region if cfg is not None else "") or "us-central1"
        key = (project, region, clients.vertex_endpoint(cfg, region).address,
               clients.logging_endpoint(cfg).address)
        with self._lock:
            if self._vertex_key != key:
                from cockpit.vertex import VertexBackend

                self._vertex, self._vertex_key = VertexBackend(cfg, project=project, region=region), key
            return self._vertex

    def require_vertex(self, cfg: Any, project: str | None = None, region: str | None = None) -> Any:
        backend = self.vertex(cfg, project, region)
        if backend is None:
            where = cfg.source if cfg is not None and cfg.source else "the preset"
            raise CockpitError(f"{where}: cloud.project is empty; set it to your Google Cloud project id "
                               "(or pass --project, or set GOOGLE_CLOUD_PROJECT)")
        return backend

    def for_job(self, job_id: str, cfg: Any, project: str | None = None, region: str | None = None) -> Any:
        """The backend that owns `job_id`."""
        if is_local(job_id):
            return self.local
        return self.require_vertex(cfg, project, region)

    def list_jobs(self, cfg: Any, project: str | None = None, region: str | None = None
                  ) -> tuple[list[JobInfo], str]:
        """Local runs and Vertex AI jobs together, plus a note when the Vertex list is missing (why)."""
        jobs = list(self.local.list())
        try:
            vertex = self.vertex(cfg, project, region)
            if vertex is None:
                return jobs, NO_PROJECT_NOTE
            jobs += vertex.list()
        except CockpitError as exc:
            return jobs, f"Vertex AI: {exc.message}; showing local runs only"
        return jobs, ""


def pull_model(backend: Any, info: JobInfo, to: Path | None = None) -> Path:
    """Download a job's exported model (default models/<job id>); one line when there is none yet."""
    to = Path(to or Path("models") / info.id)
    if to.exists() and not to.is_dir():
        raise CockpitError(f"{to}: exists and is not a directory")
    return backend.pull(info.id, to)


# ----- rows --------------------------------------------------------------------------------------------

def format_age(seconds: float) -> str:
    """45s, 12m, 3h05, 2d: the one age format of the CLI table and the TUI's Jobs table."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s // 60 % 60:02d}"
    return f"{s // 86400}d"


def machine_text(info: JobInfo) -> str:
    """'n1-standard-8+1xT4' (' x3' for 3 replicas); 'this machine' for local runs."""
    if info.backend == "local":
        return "this machine"
    text = info.machine_type or "-"
    if info.accelerator_type and info.accelerator_count:
        gpu = info.accelerator_type.removeprefix("NVIDIA_").removeprefix("TESLA_")
        text += f"+{info.accelerator_count}x{gpu}"
    return text + (f" x{info.replica_count}" if info.replica_count > 1 else "")


def cost_text(info: JobInfo, now: datetime) -> str:
    cost = info.cost_so_far(now)
    return "-" if cost is None else f"${cost:,.2f}"


@dataclass(frozen=True)
class JobRow:
    """What a jobs table shows of one job (text cells, the state without its JOB_STATE_ prefix)."""
    id: str
    name: str
    state: str
    machine: str
    age: str
    cost: str


COLUMNS = ("id", "name", "state", "machine", "age", "cost")


def job_row(info: JobInfo, now: datetime | None = None) -> JobRow:
    now = now or datetime.now(timezone.utc)
    return JobRow(info.id, info.name, short_state(info.state), machine_text(info),
                  format_age(info.age_seconds(now)), cost_text(info, now))


def sort_newest_first(jobs: list[JobInfo], now: datetime | None = None) -> list[JobInfo]:
    now = now or datetime.now(timezone.utc)
    return sorted(jobs, key=lambda j: j.create_time or now, reverse=True)


def jobs_table(jobs: list[JobInfo], now: datetime | None = None) -> str:
    """The CLI's plain-text table, newest first."""
    now = now or datetime.now(timezone.utc)
    rows = [tuple(c.upper() for c in COLUMNS)]
    for info in sort_newest_first(jobs, now):
        r = job_row(info, now)
        rows.append((r.id, r.name, r.state, r.machine, r.age, r.cost))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
