"""The cockpit's sections (one per tab): Presets, Cost, Build, Jobs, Run/Logs."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.containers import Container
from textual.worker import Worker

if TYPE_CHECKING:
    from cockpit.tui.app import CockpitApp


class Section(Container):
    """A tab's content. `PALETTE` lists (title, help, action) for the command palette.

    Only the first section is built at start-up; the app builds each other one the first time it is shown
    (cockpit.tui.app.SECTION_CLASSES), so a section reads what it shows from the app when it mounts."""

    SECTION_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    PALETTE: ClassVar[list[tuple[str, str, str]]] = []

    def shown(self) -> None:
        """Called each time the section comes on screen (it is built the first time): focus its main
        widget, refresh what may be stale."""

    @property
    def cockpit(self) -> CockpitApp:
        """The app, typed: a section only ever lives inside a CockpitApp (tests run that app too)."""
        return cast("CockpitApp", self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: each section hands failures to the app's one handler.
        self.cockpit.worker_state_changed(event)
