"""A log view for big, fast streams: Textual's `Log` (plain strings, renders only visible lines) with a
severity tag per line coloured at render time, tail-follow that pauses when the user scrolls up (and
resumes at the bottom, like toolong), and a `/` filter.

Lines arrive from worker threads through a `LineFeed`: threads append to a deque, the UI drains it on a
timer and writes the whole batch with one `write_lines` call, so 100k lines cost a few UI frames rather
than 100k cross-thread calls.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Generic, Iterable, TypeVar

from rich.highlighter import Highlighter
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, Log

from cockpit.backend import LogLine

MAX_LINES = 200_000
TAG_WIDTH = 6  # "ERROR " etc.: every line starts with a fixed-width tag the highlighter colours
_TAGS = {"DEBUG": "DEBUG", "INFO": "INFO", "NOTICE": "INFO", "WARNING": "WARN", "ERROR": "ERROR",
         "CRITICAL": "ERROR", "ALERT": "ERROR", "EMERGENCY": "ERROR"}
_TAG_STYLES = {"DEBUG": "dim", "INFO": "green", "WARN": "bold yellow", "ERROR": "bold red",
               "EPOCH": "bold cyan", "STEP": "blue", "DONE": "bold magenta"}


def format_line(line: LogLine) -> str:
    """A LogLine -> 'TAG   text': the severity (or a metric event of note) as a fixed-width tag."""
    payload = line.payload or {}
    event = payload.get("event")
    text = line.text
    if event == "epoch":
        from core.events import human_line  # light: json/math/time only

        text = human_line("epoch", text, line.severity, payload)
        tag = "EPOCH"
    elif event == "step":
        tag = "STEP"
    elif event == "done":
        tag = "DONE"
    else:
        tag = _TAGS.get(line.severity.upper(), "")
    return f"{tag:<{TAG_WIDTH}}{text}"


class SeverityHighlighter(Highlighter):
    """Colours the tag of each line (and a whole ERROR line); runs only for lines on screen."""

    def highlight(self, text: Text) -> None:
        tag = text.plain[:TAG_WIDTH].strip()
        style = _TAG_STYLES.get(tag)
        if style:
            text.stylize(style, 0, len(tag))
            if tag == "ERROR":
                text.stylize("red", TAG_WIDTH)


T = TypeVar("T")


class LineFeed(Generic[T]):
    """Thread-safe hand-over from workers to the UI: `put` from any thread, `drain` on the UI thread."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()  # append and popleft are atomic: no lock needed

    def put(self, item: T) -> None:
        self._items.append(item)

    def drain(self, limit: int = 50_000) -> list[T]:
        out: list[T] = []
        pop = self._items.popleft
        while self._items and len(out) < limit:
            out.append(pop())
        return out

    def __len__(self) -> int:
        return len(self._items)


class LogView(Vertical):
    """Log + filter box + a one-line follow indicator."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="log.filter", tooltip="Show only lines containing a text (/)"),
        Binding("end", "follow", "Follow", id="log.follow", tooltip="Jump to the newest line and follow again"),
        Binding("escape", "clear_filter", "Clear filter", id="log.clear_filter", show=False,
                tooltip="Remove the filter and show every line"),
    ]

    def __init__(self, max_lines: int = MAX_LINES, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.max_lines = max_lines
        self._all: deque[str] = deque(maxlen=max_lines)
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter (esc clears)", id="log-filter", compact=True, classes="hidden")
        log = Log(highlight=True, max_lines=self.max_lines, id="log")
        log.highlighter = SeverityHighlighter()
        yield log
        yield Label("", id="log-state", classes="log-state")

    @property
    def log(self) -> Log:
        return self.query_one("#log", Log)

    @property
    def following(self) -> bool:
        log = self.log
        return log.is_vertical_scroll_end or log.max_scroll_y == 0

    @property
    def lines(self) -> list[str]:
        """Every line kept (filter or not), oldest first."""
        return list(self._all)

    def write_lines(self, lines: Iterable[str]) -> None:
        lines = list(lines)
        if not lines:
            return
        self._all.extend(lines)
        if self.filter_text:
            needle = self.filter_text
            lines = [line for line in lines if needle in line.lower()]
        if lines:
            self.log.write_lines(lines)
        self._show_state()

    def clear(self) -> None:
        self._all.clear()
        self.log.clear()
        self._show_state()

    def on_mount(self) -> None:
        self.set_interval(0.5, self._show_state)

    def _show_state(self) -> None:
        total = len(self._all)
        parts = [f"{total:,} lines"]
        if self.filter_text:
            parts.append(f"filter '{self.filter_text}': {self.log.line_count:,} shown")
        parts.append("following" if self.following else "paused (end: follow)")
        self.query_one("#log-state", Label).update("  ·  ".join(parts))

    # -- actions -----------------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_follow(self) -> None:
        self.log.scroll_end(animate=False)
        self._show_state()

    def action_clear_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.value = ""
        box.add_class("hidden")
        self.log.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "log-filter":
            return
        event.stop()
        self.apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-filter":
            event.stop()
            self.log.focus()

    def apply_filter(self, text: str) -> None:
        """Show only lines containing `text` (case-insensitive); empty shows everything."""
        self.filter_text = text.strip().lower()
        needle = self.filter_text
        lines = [line for line in self._all if needle in line.lower()] if needle else list(self._all)
        log = self.log
        log.clear()
        log.write_lines(lines, scroll_end=True)
        self._show_state()


DRAIN_EVERY_S = 0.05
DRAIN_BATCH = 5_000  # lines per tick: bounds one tick's work (~tens of ms), still 100k lines/s


def drain_into(feed: LineFeed[LogLine], view: LogView, on_line: Callable[[LogLine], None] | None = None) -> int:
    """Move up to DRAIN_BATCH queued lines from `feed` into `view` (one write); `on_line` sees each first."""
    batch = feed.drain(DRAIN_BATCH)
    if not batch:
        return 0
    if on_line is not None:
        for line in batch:
            on_line(line)
    view.write_lines(format_line(line) for line in batch)
    return len(batch)
