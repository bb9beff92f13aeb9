"""Run/Logs: start a local training run with one key, follow any job's log (local or Vertex AI) with
live loss / QWK / learning-rate curves and a status line (state, elapsed, phase, epoch, step, samples/s,
ETA, cost so far). The job's state is asked every few seconds (cockpit.vertex.state_poll_s)."""
from __future__ import annotations

import threading
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from cockpit.backend import JobInfo, JobState, LogLine, MetricEvent, parse_metric, short_state
from cockpit.errors import CockpitError
from cockpit.tui.dialogs import ConfirmDialog
from cockpit.tui.logview import DRAIN_EVERY_S, LineFeed, LogView, drain_into
from cockpit.tui.plots import MetricPlots
from cockpit.tui.sections import Section
from cockpit.tui.sections.build import clock

def elapsed_text(job: JobInfo) -> str:
    """'running 0:42' since the job started (to its end once it ended), else 'waiting 0:10' since it was
    created."""
    if job.start_time is not None:
        return f"elapsed {clock(job.running_seconds())}"
    return f"waiting {clock(job.age_seconds())}"


IDLE = "no run: r trains the current preset locally; Jobs (enter) opens any job here"


class RunSection(Section):
    SECTION_ID = "run"
    TITLE = "Run/Logs"
    BINDINGS = [
        Binding("r", "run", "Run locally", id="run.start", tooltip="Start a local training run of the current preset"),
        Binding("s", "stop", "Stop run", id="run.stop", tooltip="Stop (cancel) the run shown here, after a confirmation"),
        Binding("p", "pull", "Pull model", id="run.pull",
                tooltip="Download the model of the job shown here once it succeeded (to models/JOB)"),
    ]
    PALETTE = [("Start a local training run", "Train the current preset on this machine (r)", "run"),
               ("Stop the run", "Cancel the run shown in Run/Logs (s)", "stop"),
               ("Pull the model", "Download the succeeded job's model (p)", "pull")]

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.feed: LineFeed[LogLine] = LineFeed()
        self.job: JobInfo | None = None
        self.backend: Any = None
        self.last: dict[str, MetricEvent] = {}
        self.epoch_lines = 0
        self._stop: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield Static(IDLE, id="run-status", markup=False)
        with Horizontal(id="run-body"):
            yield LogView(id="run-log")
            yield MetricPlots(id="run-plots")

    def on_mount(self) -> None:
        self.set_interval(DRAIN_EVERY_S, self._drain)
        self.set_interval(1.0, self.show_status)

    def shown(self) -> None:
        self.log_view.log.focus()

    def on_unmount(self) -> None:
        # The tail runs in a thread that only a stop event ends: without this, quitting while a job is
        # still running would leave the process waiting for that thread.
        if self._stop is not None:
            self._stop.set()

    @property
    def log_view(self) -> LogView:
        return self.query_one("#run-log", LogView)

    @property
    def plots(self) -> MetricPlots:
        return self.query_one("#run-plots", MetricPlots)

    @property
    def active_local_run(self) -> JobInfo | None:
        """The local run shown here while it is still training (quitting asks first)."""
        if self.job is not None and self.job.backend == "local" and not self.job.terminal:
            return self.job
        return None

    # -- following a job ---------------------------------------------------------------------------------

    def follow(self, backend: Any, info: JobInfo) -> None:
        """Show `info`'s log and curves from the start, following it live until it ends."""
        if self._stop is not None:
            self._stop.set()  # ends the previous tail (its worker is replaced below)
        self.feed.drain()
        self.job, self.backend, self.last, self.epoch_lines = info, backend, {}, 0
        self.log_view.clear()
        self.plots.reset()
        self._stop = threading.Event()
        self._tail(backend, info.id, self._stop)
        self._watch_state(backend, info.id, self._stop)
        self.show_status()

    @work(thread=True, exclusive=True, exit_on_error=False, group="tail")
    def _tail(self, backend: Any, job_id: str, stop: threading.Event) -> None:
        for line in backend.logs(job_id, follow=True, stop=stop):
            self.feed.put(line)
            if stop.is_set():
                return
        if not stop.is_set():
            info = backend.get(job_id)
            self.app.call_from_thread(self._ended, info)

    @work(thread=True, exclusive=True, exit_on_error=False, group="state")
    def _watch_state(self, backend: Any, job_id: str, stop: threading.Event) -> None:
        """Keep the status line's state current (queued -> running -> ...) until the job ends."""
        from cockpit.vertex import state_poll_s

        every = state_poll_s() if backend.name == "vertex" else 1.0
        while not stop.wait(every):
            info = backend.get(job_id)
            self.cockpit.call_from_thread(self._state_seen, info)
            if info.terminal:
                return

    def _state_seen(self, info: JobInfo) -> None:
        if self.job is not None and info.id == self.job.id and not self.job.terminal:
            self.job = info
            self.show_status()

    def _ended(self, info: JobInfo) -> None:
        if self.job is not None and info.id == self.job.id:
            self._drain()
            self.job = info
            self.show_status()
            self.notify(f"{info.name} ({info.id}) ended: {short_state(info.state)}"
                        + (f": {info.error}" if info.error else ""), timeout=6,
                        severity="information" if info.state == JobState.SUCCEEDED else "warning")

    def _drain(self) -> None:
        if drain_into(self.feed, self.log_view, self._on_line):
            self.plots.flush()
            self.show_status()

    def _on_line(self, line: LogLine) -> None:
        ev = parse_metric(line)
        if ev is None:
            return
        self.last[ev.event] = ev
        self.plots.add(ev)
        if ev.event == "epoch":
            self.epoch_lines += 1

    # -- status line -------------------------------------------------------------------------------------

    def status_text(self) -> str:
        if self.job is None:
            return IDLE
        j = self.job
        parts = [f"{j.name} [{j.backend}] {short_state(j.state)}", elapsed_text(j)]
        cost = j.cost_so_far()
        if cost is not None and j.backend != "local":  # state, time and money first: the line may be cut
            parts.append(f"cost ${cost:,.2f}")
        latest = self._latest()
        if latest is not None:
            if latest.phase is not None:
                parts.append(f"phase {latest.phase}")
            if latest.epoch is not None:
                total = self.last["epoch"].epochs if "epoch" in self.last else None
                parts.append(f"epoch {latest.epoch}" + (f"/{total}" if total else ""))
            if latest.step is not None:
                parts.append(f"step {latest.step}")
            if latest.samples_per_s is not None:
                parts.append(f"{latest.samples_per_s:,.0f} samples/s")
        eta = self.last["epoch"].eta_s if "epoch" in self.last else None
        if eta is not None and not j.terminal:
            parts.append(f"ETA {clock(eta)}")
        return "  ·  ".join(parts)

    def _latest(self) -> MetricEvent | None:
        candidates = [ev for name, ev in self.last.items() if name in ("step", "epoch")]
        if not candidates:
            return None
        return max(candidates, key=lambda ev: (ev.step or 0, ev.event == "epoch"))

    def show_status(self) -> None:
        self.query_one("#run-status", Static).update(self.status_text())

    # -- actions -----------------------------------------------------------------------------------------

    def action_run(self) -> None:
        app = self.cockpit
        if self.active_local_run is not None:
            self.notify(f"{self.active_local_run.id} is still training (s stops it)", severity="warning")
            return
        if getattr(self, "_starting", False):  # `r` again before the first run is up: one run, not two
            self.notify("a local run is starting", severity="warning")
            return
        doc = app.doc
        if app.cfg is None:
            app.show_error(f"{app.validation_error}")
            return
        if doc.dirty:
            def answered(yes: bool | None) -> None:
                if yes:
                    try:
                        doc.save()
                    except CockpitError as exc:  # disk full, read-only, changed on disk: edits kept
                        app.show_error(f"not started: {exc.message}")
                        return
                    app.presets_section.show_dirty()
                    self._start(doc.path)

            app.push_screen(ConfirmDialog("The preset has unsaved changes. Save them and start the run?",
                                          yes="Save and run", no="Not now"), answered)
            return
        self._start(doc.path)

    def _start(self, preset_path) -> None:
        self._starting = True
        self._submit(preset_path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="submit")
    def _submit(self, preset_path) -> None:
        local = self.cockpit.backends.local
        try:
            info = local.submit(preset_path, [])
        except BaseException:
            self.app.call_from_thread(setattr, self, "_starting", False)
            raise
        self.app.call_from_thread(self._started, local, info)

    def _started(self, local: Any, info: JobInfo) -> None:
        self.follow(local, info)
        self._starting = False  # from here on `r` is checked against active_local_run

    def action_stop(self) -> None:
        job = self.job
        if job is None or job.terminal:
            self.notify("no running job here", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(self.backend, job)

        self.app.push_screen(ConfirmDialog(f"Stop {job.backend} run {job.name} ({job.id})?", yes="Stop",
                                           no="Keep running"), answered)

    @work(thread=True, exit_on_error=False, group="run-cancel")
    def _cancel(self, backend: Any, job: JobInfo) -> None:
        info = backend.cancel(job.id)
        self.app.call_from_thread(self._cancelled, info)

    def action_pull(self) -> None:
        if self.job is None:
            self.notify("no job here: open one from Jobs (enter)", severity="warning")
            return
        self.cockpit.pull(self.job)

    def _cancelled(self, info: JobInfo) -> None:
        if self.job is not None and self.job.id == info.id:
            self.job = info
            self.show_status()
