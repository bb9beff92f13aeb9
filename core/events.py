"""Metric lines (docs/design.md §4, a contract): one JSON object per line on stdout for every event the
cockpit plots. On Vertex AI, Cloud Logging turns each line into a jsonPayload; `severity` and
`message` are the special keys. On a TTY a person reads readable lines instead (and a progress bar on
stderr); the JSON lines still go to training.log, so nothing is lost either way.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, TextIO

EVENTS = ("start", "step", "epoch", "checkpoint", "early_stop", "preempted", "done", "error", "warning", "info")
# Fields whose values are whole numbers (indices, counts, sizes; lists of them for image_size and the
# confusion matrix). Cloud Logging stores every JSON number of a jsonPayload as a double, so a reader
# turns these back into ints (cockpit.backend) and "epoch 4.0/10.0" never reaches a screen.
INTEGER_FIELDS = frozenset({
    "phase", "epoch", "epochs", "step", "best_epoch", "batches_done", "global_step", "phase_step",
    "loss_count", "world_size", "train", "val", "test", "phase1_epochs", "phase2_epochs", "batch_size",
    "grad_accum_steps", "image_size", "confusion",
})


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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def human_line(event: str, message: str, severity: str, fields: dict) -> str:
    if event == "epoch":
        keys = ("train_loss", "val_loss", "val_qwk", "val_mae", "lr", "samples_per_s")
        parts = "  ".join(f"{k} {_fmt(fields[k])}" for k in keys if fields.get(k) is not None)
        return f"phase {fields.get('phase')} epoch {fields.get('epoch')}/{fields.get('epochs', '?')}  {parts}"
    if event == "start" and isinstance(fields.get("config"), dict):
        # The effective config, one line per section (config.toml beside the outputs has it in full).
        lines = [message]
        for section, values in fields["config"].items():
            if isinstance(values, dict) and section != "cloud":
                lines.append(f"  [{section}] " + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
        return "\n".join(lines)
    prefix = "" if severity in ("INFO", "DEFAULT") else f"{severity.lower()}: "
    return prefix + message


class EventWriter:
    """Writes every event as a JSON line to the log file; to stdout as JSON (mode "json") or as
    readable text (mode "text"). Only rank 0 writes anything."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "text" if self.stream.isatty() else "json"
        self.mode = mode
        self.enabled = enabled
        self.log_files: list[TextIO] = []

    def open_log(self, path: str) -> None:
        if self.enabled:
            self.log_files.append(open(path, "a", encoding="utf-8"))

    def emit(self, event: str, message: str, severity: str = "INFO", **fields: Any) -> str:
        line = metric_line(event, message, severity, **fields)
        if not self.enabled:
            return line
        if self.mode == "json":
            print(line, file=self.stream, flush=True)
        elif event not in ("step", "error"):  # steps feed the progress bar; errors go to stderr
            print(human_line(event, message, severity, fields), file=self.stream, flush=True)
        for fh in self.log_files:
            fh.write(line + "\n")
            fh.flush()
        return line

    def close(self) -> None:
        for fh in self.log_files:
            fh.close()
        self.log_files = []


class ProgressBar:
    """A one-line bar on stderr, only on a TTY (stderr lines show as ERROR in Cloud Logging)."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label = max(1, total), label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = self._last = time.perf_counter()

    def update(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and done < self.total:  # ten redraws a second are plenty
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        rate = done / max(1e-9, time.perf_counter() - self.t0)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                         f"{rate:.1f} it/s {extra}   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def open_tensorboard(log_dir: str, events: "EventWriter"):
    """A SummaryWriter for log_dir, or None (no dir, or tensorboard not installed: a warning line)."""
    if not log_dir:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        events.emit("warning", "tensorboard is not installed: TensorBoard scalars are off", severity="WARNING")
        return None
    return SummaryWriter(log_dir=log_dir)


def one_line(exc: BaseException) -> str:
    """The error's own message. One re-raised from a DataLoader worker (e.g. an ImageError with
    data.cache off and num_workers > 0) carries the worker's traceback in its message; the last line of
    that is the original `module.Type: message`."""
    text = str(exc).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1]
    head, sep, message = last.partition(": ")
    return message if sep and head.rsplit(".", 1)[-1] == type(exc).__name__ else last
