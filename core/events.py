"""Metric lines (DESIGN.md §4, a contract): one JSON object per line on stdout for every event the
cockpit plots. On Vertex AI, Cloud Logging turns each line into a jsonPayload; `severity` and
`message` are the special keys. Human-friendly text and progress bars are for TTYs only.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, TextIO

EVENTS = ("start", "step", "epoch", "checkpoint", "early_stop", "preempted", "done", "error")


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf: a NaN loss must still produce a parseable line.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def metric_line(event: str, message: str, severity: str = "INFO", **fields: Any) -> str:
    payload = {"severity": severity, "message": message, "event": event, "time": round(time.time(), 3)}
    payload.update(fields)
    return json.dumps(_clean(payload), separators=(",", ":"), allow_nan=False)


class EventWriter:
    """Writes metric lines to stdout (always) and to a log file (training.log), only on rank 0."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.log_file: TextIO | None = None

    def open_log(self, path: str) -> None:
        if self.enabled:
            self.log_file = open(path, "a", encoding="utf-8")

    def emit(self, event: str, message: str, severity: str = "INFO", **fields: Any) -> str:
        line = metric_line(event, message, severity, **fields)
        if self.enabled:
            print(line, file=self.stream, flush=True)
            if self.log_file:
                self.log_file.write(line + "\n")
                self.log_file.flush()
        return line

    def close(self) -> None:
        if self.log_file:
            self.log_file.close()
            self.log_file = None
