"""The cockpit's sections (one per tab): Presets, Cost, Build, Jobs, Run/Logs."""
from __future__ import annotations

from typing import ClassVar

from textual.containers import Container
from textual.worker import Worker


class Section(Container):
    """A tab's content. `PALETTE` lists (title, help, action) for the command palette."""

    SECTION_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    PALETTE: ClassVar[list[tuple[str, str, str]]] = []

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: each section hands failures to the app's one handler.
        self.app.worker_state_changed(event)  # type: ignore[attr-defined]
