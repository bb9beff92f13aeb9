"""SIGTERM/SIGINT become a flag the training loop checks at step boundaries.

Spot VMs get about 30 s between the shutdown signal and power-off (docs/design.md §5): the loop saves at the
next step boundary, well inside that. A second signal means "now": exit at once.
"""
from __future__ import annotations

import os
import signal
import time

from core import distributed

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later" - the run is resumable, not failed
CHECK_EVERY = 5  # optimizer steps between the ranks' preemption agreements (multi-process only)


class PreemptionHandler:
    def __init__(self):
        self.signum: int | None = None
        self.received_at: float | None = None
        self._previous = {}

    def install(self) -> "PreemptionHandler":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. under a test runner's worker thread)
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            os._exit(128 + signum)  # second signal: the user or the platform insists
        self.signum = signum
        self.received_at = time.monotonic()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def agreed(self, step: int, world_size: int, epoch_end: bool = False) -> bool:
        """Whether to stop at this step boundary. Ranks must agree, which costs an all-reduce and a host
        sync: they do it every CHECK_EVERY steps only (the same steps on every rank) and at every epoch
        end, still far inside the ~30 s a Spot VM gets."""
        if world_size == 1:
            return self.requested
        if not epoch_end and step % CHECK_EVERY:
            return False
        return distributed.any_rank_true(self.requested)

    def seconds_since_signal(self) -> float:
        return 0.0 if self.received_at is None else time.monotonic() - self.received_at

    def report(self, events, checkpoint_dir: str, save_s: float, **where) -> None:
        """The "preempted" line, once the checkpoint the signal asked for is saved: `where` the run stopped
        (phase, epoch, step, batches_done), how long the save and the whole stop took."""
        since = self.seconds_since_signal()
        events.emit("preempted", f"signal received: saved {checkpoint_dir}/last.pth {since:.2f}s after the signal; "
                                 f"resume with --resume auto", severity="WARNING", **where,
                    save_s=round(save_s, 3), signal_to_saved_s=round(since, 3))

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
