"""Which job backends the TUI can talk to: local runs always, Vertex AI when the preset names a project.

A thin adapter over `cockpit.local_runs.LocalBackend` and `cockpit.vertex.VertexBackend`; it holds no
cloud logic. `vertex()` is called from worker threads (building the client imports the SDK).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from cockpit.backend import JobInfo

NO_PROJECT_NOTE = "Vertex AI: set cloud.project in the preset to see cloud jobs; showing local runs only"


class Backends:
    def __init__(self, runs_dir: str | os.PathLike = Path("outputs/runs")):
        from cockpit.local_runs import LocalBackend

        self.local = LocalBackend(runs_dir)
        self._vertex: Any = None
        self._vertex_key: tuple | None = None
        self._lock = threading.Lock()

    def vertex(self, cfg: Any) -> Any:
        """The VertexBackend for the preset's project/region/endpoint, or None without a project."""
        if cfg is None or not cfg.cloud.project:
            return None
        endpoint = os.environ.get("PSA_VERTEX_ENDPOINT")  # endpoints come only from the env (clients.py)
        key = (cfg.cloud.project, cfg.cloud.region, endpoint, os.environ.get("PSA_LOGGING_ENDPOINT"))
        with self._lock:
            if self._vertex_key != key:
                from cockpit.vertex import VertexBackend  # imports the GAPIC client lazily, off the UI thread

                self._vertex, self._vertex_key = VertexBackend(cfg), key
            return self._vertex

    def for_job(self, info: JobInfo, cfg: Any) -> Any:
        if info.backend == "local":
            return self.local
        backend = self.vertex(cfg)
        if backend is None:
            from cockpit.errors import CockpitError

            raise CockpitError(f"job {info.id} is a Vertex AI job: set cloud.project in the preset to reach it")
        return backend
