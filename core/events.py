"""Metric lines (docs/design.md §4, a contract): one JSON object per line on stdout for every event the
cockpit plots. On Vertex AI, Cloud Logging turns each line into a jsonPayload; `severity` and
`message` are the special keys. On a TTY a person reads readable lines instead (and a progress bar on
stderr); the JSON lines still go to training.log, so nothing is lost either way. `start_fields`,
`epoch_fields` and `done_fields` build what core.train's "start", "epoch" and "done" lines carry.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, TextIO

EVENTS = ("start", "step", "epoch", "checkpoint", "early_stop", "preempted", "done", "error", "warning", "info")
# The "epoch" fields a person reads on a TTY and TensorBoard plots.
EPOCH_SUMMARY = ("train_loss", "val_loss", "val_qwk", "val_mae", "lr", "samples_per_s")
# Fields whose values are whole numbers (indices, counts, sizes; lists of them for image_size and the
# confusion matrix). Cloud Logging stores every JSON number of a jsonPayload as a double, so a reader
# turns these back into ints (cockpit.backend) and "epoch 4.0/10.0" never reaches a screen.
INTEGER_FIELDS = frozenset({
    "phase", "epoch", "epochs", "step", "best_epoch", "batches_done", "global_step", "phase_step",
    "loss_count", "world_size", "train", "val", "test", "phase1_epochs", "phase2_epochs", "batch_size",
    "grad_accum_steps", "image_size", "confusion",
})


def start_fields(cfg, device, precision: str, world_size: int, splits, checkpoint_dir: str,
                 model_dir: str, concurrent_sides: bool = False) -> dict:
    """The "start" line's fields: where and how the run trains (concurrent_sides: both sides' networks at
    once, core/concurrent_sides.py), its split sizes, epochs and batch, its output dirs and the whole
    effective config (`cfg`, a core.config.Config)."""
    t = cfg.training
    return dict(preset=cfg.source, device=str(device), precision=precision, world_size=world_size,
                concurrent_sides=concurrent_sides,
                backbone=cfg.model.backbone, image_size=list(cfg.data.image_size), train=len(splits.train),
                val=len(splits.val), test=len(splits.test), phase1_epochs=t.phase1_epochs,
                phase2_epochs=t.phase2_epochs, batch_size=t.batch_size, grad_accum_steps=t.grad_accum_steps,
                output_dir=cfg.output.dir, checkpoint_dir=checkpoint_dir, model_dir=model_dir,
                config=cfg.to_dict())


def epoch_fields(phase: int, epoch: int, epochs: int, step: int, metrics: dict, lr: float,
                 remaining_epochs: int, improved: bool) -> dict:
    """The "epoch" line's fields (also the run's history): `metrics` holds the validation results
    (val_loss, val_qwk, val_mae, val_acc) and the epoch's train stats (train_loss, samples_per_s,
    epoch_time_s, data_time_s); eta_s assumes `remaining_epochs` more epochs as long as this one."""
    return dict(phase=phase, epoch=epoch, epochs=epochs, step=step, train_loss=metrics["train_loss"],
                val_loss=metrics["val_loss"], val_qwk=metrics["val_qwk"], val_mae=metrics["val_mae"],
                val_acc=metrics["val_acc"], lr=lr, samples_per_s=round(metrics["samples_per_s"], 2),
                epoch_time_s=round(metrics["epoch_time_s"], 2), data_time_s=round(metrics["data_time_s"], 2),
                eta_s=round(remaining_epochs * metrics["epoch_time_s"], 1), improved=improved)


def done_fields(report: dict) -> dict:
    """The "done" line's test metrics, from the test report (core.metrics, with its "inference" timing);
    the trainer adds export_path and step."""
    return dict(test_acc=report["accuracy"], inference=report["inference"],
                **{f"test_{k}": report[k] for k in ("qwk", "mae", "within_one", "macro_f1", "weighted_f1")},
                per_grade_accuracy=report["per_grade_accuracy"], confusion=report["confusion"],
                criteria=report.get("criteria", {}))


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
        parts = "  ".join(f"{k} {_fmt(fields[k])}" for k in EPOCH_SUMMARY if fields.get(k) is not None)
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


def add_epoch_scalars(tb, phase: int, fields: dict, step: int) -> None:
    """An "epoch" line's summary fields as TensorBoard scalars phaseN/<key> at `step`; no writer, nothing."""
    if tb is not None:
        for key in EPOCH_SUMMARY:
            tb.add_scalar(f"phase{phase}/{key}", fields[key], step)


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
