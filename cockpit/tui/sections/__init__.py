"""The cockpit's sections (one per tab): Presets, Cost, Build, Jobs, Run/Logs."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.containers import Container
from textual.worker import Worker

if TYPE_CHECKING:
    from cockpit.tui.app import CockpitApp


class Section(Container):
    """A tab's content. `PALETTE` lists (title, help, action) for the command palette."""

    SECTION_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    PALETTE: ClassVar[list[tuple[str, str, str]]] = []

    @property
    def cockpit(self) -> CockpitApp:
        """The app, typed: a section only ever lives inside a CockpitApp (tests run that app too)."""
        return cast("CockpitApp", self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: each section hands failures to the app's one handler.
        self.cockpit.worker_state_changed(event)
