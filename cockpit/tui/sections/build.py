"""Build: `docker build` + `docker push` of the trainer image (the engine's `cockpit.image`), output
streamed into a log view, elapsed time, cancel."""
from __future__ import annotations

import threading
import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Label, Static

from cockpit.backend import LogLine
from cockpit.errors import CockpitError
from cockpit.tui.logview import DRAIN_EVERY_S, LineFeed, LogView, drain_into
from cockpit.tui.paths import short_paths
from cockpit.tui.sections import Section


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class BuildSection(Section):
    SECTION_ID = "build"
    TITLE = "Build"
    BINDINGS = [
        Binding("b", "build", "Build+push", id="build.start", tooltip="docker build and push the trainer image"),
        Binding("x", "cancel_build", "Cancel", id="build.cancel", tooltip="Stop the running build or push"),
    ]
    PALETTE = [("Build and push the image", "docker build + push for the current preset (b)", "build"),
               ("Cancel the build", "Stop docker build/push (x)", "cancel_build")]

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.feed: LineFeed[LogLine] = LineFeed()
        self._cancel: threading.Event | None = None
        self._started: float | None = None
        self._ended: float | None = None
        self.outcome = ""  # "", "running", "done", "failed", "cancelled"

    def compose(self) -> ComposeResult:
        yield Static("", id="build-image", markup=False)
        with Horizontal(id="build-bar"):
            yield Label("idle: press b to build and push", id="build-state")
        yield LogView(max_lines=50_000, id="build-log")

    def on_mount(self) -> None:
        self.set_interval(DRAIN_EVERY_S, self._drain)
        self.set_interval(0.5, self._show_state)
        self.show_target()

    def shown(self) -> None:
        self.show_target()
        self.query_one("#build-log", LogView).log.focus()

    def show_target(self) -> None:
        """The image the build would produce (the tag is the git SHA, taken when the build starts)."""
        self.query_one("#build-image", Static).update(self._target_text())

    def _target_text(self) -> str:
        cfg = self.cockpit.cfg
        if cfg is None:
            return "image: the preset is not valid (see Presets)"
        from cockpit.image import image_uri

        try:
            return f"image: {image_uri(cfg, '<git tag>')}   context: repo root (Dockerfile)"
        except CockpitError as exc:
            return f"image: {short_paths(exc.message)}"

    def _drain(self) -> None:
        drain_into(self.feed, self.query_one("#build-log", LogView))

    def _show_state(self) -> None:
        label = self.query_one("#build-state", Label)
        if self._started is None:
            return
        elapsed = clock((self._ended or time.monotonic()) - self._started)
        text = {"running": f"running {elapsed}   x: cancel", "done": f"done in {elapsed}",
                "failed": f"failed after {elapsed}", "cancelled": f"cancelled after {elapsed}"}[self.outcome]
        label.update(text)
        label.set_class(self.outcome == "failed", "invalid")

    @property
    def running(self) -> bool:
        return self.outcome == "running"

    # -- one streamed, cancellable piece of work (a build, or a submit's build + upload + create) ----------

    def begin(self) -> threading.Event:
        """Clear the log and show a running task; returns the Event that `x` sets to cancel it."""
        self.query_one("#build-log", LogView).clear()
        self._cancel = threading.Event()
        self._started, self._ended, self.outcome = time.monotonic(), None, "running"
        self._show_state()
        return self._cancel

    def sink(self, text: str) -> None:
        """A line of output, from any thread."""
        self.feed.put(LogLine(text))

    def finish(self, outcome: str) -> None:
        """'done', 'failed' or 'cancelled' (UI thread)."""
        self._ended, self.outcome = time.monotonic(), outcome
        self._drain()
        self._show_state()

    def finish_from_thread(self, error: BaseException | None) -> None:
        """A worker's end: a failure after the user's cancel is 'cancelled' (no dialog for that)."""
        cancelled = self._cancel is not None and self._cancel.is_set()
        outcome = "done" if error is None else "cancelled" if cancelled else "failed"
        self.cockpit.call_from_thread(self.finish, outcome)

    # -- actions -----------------------------------------------------------------------------------------

    def action_build(self) -> None:
        if self.running:
            self.notify("a build is already running (x cancels it)", severity="warning")
            return
        cfg = self.cockpit.cfg
        if cfg is None:
            self.cockpit.show_error("the preset is not valid; fix it in Presets first")
            return
        self._build(cfg, self.begin())

    def action_cancel_build(self) -> None:
        if self._cancel is not None and self.running:
            self._cancel.set()
            self.feed.put(LogLine("cancel requested: stopping docker", severity="WARNING"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="build")
    def _build(self, cfg, cancel: threading.Event) -> None:
        from cockpit.image import REPO_ROOT, build_and_push, git_tag, image_uri

        try:
            build_and_push(image_uri(cfg, git_tag(REPO_ROOT)), self.sink, cancel)
        except BaseException as exc:
            self.finish_from_thread(exc)
            if not cancel.is_set():
                raise
            return
        self.finish_from_thread(None)
