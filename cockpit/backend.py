"""What every caller (headless CLI, TUI) sees of a training run, whether it runs locally or on Vertex AI.

`JobBackend` is implemented by `cockpit.local_runs.LocalBackend` and `cockpit.vertex.VertexBackend`;
callers treat both alike. Types that cross the boundary are dataclasses defined here, once.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator, Protocol

from core.events import INTEGER_FIELDS


class JobState(StrEnum):
    """Vertex AI's job states (docs/design.md §5); local runs use the same names. A StrEnum: a member equals
    its API name, so states read back from run.json or the API compare without conversion."""

    QUEUED = "JOB_STATE_QUEUED"
    PENDING = "JOB_STATE_PENDING"
    RUNNING = "JOB_STATE_RUNNING"
    SUCCEEDED = "JOB_STATE_SUCCEEDED"
    FAILED = "JOB_STATE_FAILED"
    CANCELLING = "JOB_STATE_CANCELLING"
    CANCELLED = "JOB_STATE_CANCELLED"
    PAUSED = "JOB_STATE_PAUSED"
    EXPIRED = "JOB_STATE_EXPIRED"
    UPDATING = "JOB_STATE_UPDATING"
    PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"


def short_state(state: str) -> str:
    """'JOB_STATE_RUNNING' (or a state this version does not know) -> 'RUNNING'."""
    return str(state).removeprefix("JOB_STATE_")


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED,
                             JobState.PARTIALLY_SUCCEEDED})


@dataclass
class JobInfo:
    id: str                      # Vertex: the numeric job id; local: "local-<timestamp>"
    name: str                    # display name
    state: str                   # a Vertex JobState name, e.g. "JOB_STATE_RUNNING", for local runs too
    backend: str                 # "local" or "vertex"
    resource_name: str = ""      # projects/P/locations/R/customJobs/ID (vertex)
    machine_type: str = ""
    accelerator_type: str = ""
    accelerator_count: int = 0
    replica_count: int = 1
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    hourly_cost_usd: float | None = None  # from the catalog, None when unknown (local: 0)
    output_dir: str = ""         # where the run writes (base_output_directory / local outputs dir)
    preset: str = ""
    error: str = ""              # one line, for FAILED jobs
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def age_seconds(self, now: datetime | None = None) -> float:
        now = now or datetime.now(timezone.utc)
        return (now - self.create_time).total_seconds() if self.create_time else 0.0

    def running_seconds(self, now: datetime | None = None) -> float:
        if not self.start_time:
            return 0.0
        end = self.end_time or now or datetime.now(timezone.utc)
        return max(0.0, (end - self.start_time).total_seconds())

    def cost_so_far(self, now: datetime | None = None) -> float | None:
        if self.hourly_cost_usd is None:
            return None
        return self.hourly_cost_usd * self.running_seconds(now) / 3600.0


def _whole(value: Any) -> Any:
    """4.0 -> 4, and the same inside lists (image_size, the confusion matrix); anything else as it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def metric_payload(obj: dict[str, Any]) -> dict[str, Any]:
    """A metric line's object with its integer fields as ints. Cloud Logging hands jsonPayload back as a
    protobuf Struct, where every number is a double (docs/design.md §4, §6): without this a followed Vertex job
    shows "phase 2.0 epoch 4.0/10.0". Done once here, where lines are parsed, so every face shows ints."""
    if not INTEGER_FIELDS.intersection(obj):
        return obj
    return {k: _whole(v) if k in INTEGER_FIELDS else v for k, v in obj.items()}


@dataclass
class LogLine:
    text: str                          # the human-readable line (jsonPayload.message or textPayload)
    severity: str = "DEFAULT"          # Cloud Logging severity name
    timestamp: datetime | None = None
    insert_id: str = ""                # Cloud Logging de-duplication key
    payload: dict[str, Any] | None = None  # the metric line's JSON object (integer fields as ints)
    source: str = ""                   # e.g. "workerpool0-0" or "stdout"

    def __post_init__(self) -> None:
        if self.payload is not None:
            self.payload = metric_payload(self.payload)


@dataclass
class MetricEvent:
    """A parsed metric line (docs/design.md §4). Missing numeric fields are None."""
    event: str
    message: str = ""
    phase: int | None = None
    epoch: int | None = None
    epochs: int | None = None          # epochs in this phase (epoch events)
    step: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    val_qwk: float | None = None
    val_mae: float | None = None
    lr: float | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)


_NUMERIC = ("phase", "epoch", "epochs", "step", "train_loss", "val_loss", "val_qwk", "val_mae", "lr",
            "samples_per_s", "eta_s")


def parse_metric(obj: LogLine | dict | str) -> MetricEvent | None:
    """A metric event from a log line, a jsonPayload dict, or a raw stdout line; None if it is not one."""
    if isinstance(obj, LogLine):
        obj = obj.payload if obj.payload is not None else obj.text
    if isinstance(obj, str):
        text = obj.strip()
        if not text.startswith("{"):
            return None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None
    obj = metric_payload(obj)
    values: dict[str, Any] = {}
    for key in _NUMERIC:
        v = obj.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values[key] = int(v) if key in INTEGER_FIELDS else float(v)
    return MetricEvent(event=obj["event"], message=str(obj.get("message", "")), raw=obj, **values)


class JobBackend(Protocol):
    name: str  # "local" or "vertex"

    def submit(self, preset_path: Path, overrides: list[str] | None = None, **options: Any) -> JobInfo: ...

    def get(self, job_id: str) -> JobInfo: ...

    def list(self) -> list[JobInfo]: ...

    def cancel(self, job_id: str) -> JobInfo: ...

    def logs(self, job_id: str, follow: bool = False,
             stop: threading.Event | None = None) -> Iterator[LogLine]: ...

    def pull(self, job_id: str, to: Path) -> Path: ...
