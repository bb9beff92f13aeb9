"""Command palette (ctrl+p) provider: the cockpit's actions, those of the section on screen listed first."""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Iterator, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from cockpit.tui.app import CockpitApp


class CockpitCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, str, object]]:
        app = cast("CockpitApp", self.app)
        current = app.active_section_widget()
        if current is not None:
            for title, help_text, action in current.PALETTE:
                yield (f"{current.TITLE}: {title}", help_text,
                       partial(app.call_later, current.run_action, action))
        for section_id, title in app.section_titles():
            yield (f"Go to {title}", f"Show the {title} section",
                   partial(app.call_later, app.run_action, f"section('{section_id}')"))
        from cockpit.tui.app import section_class

        for section_id, _ in app.section_titles():  # sections not shown yet are listed too
            section = section_class(section_id)
            if current is not None and section_id == current.SECTION_ID:
                continue
            for title, help_text, action in section.PALETTE:
                yield (f"{section.TITLE}: {title}", help_text, partial(app.goto_and_run, section_id, action))
        yield ("Submit to Vertex AI", "Validate, confirm, build and push if needed, create the job and follow it (F7)",
               partial(app.call_later, app.action_submit_vertex))
        yield "Help: list every key", "Show the key bindings (F1)", partial(app.call_later, app.action_help)
        yield "Quit", "Quit the cockpit (asks first when needed)", partial(app.call_later, app.action_quit_cockpit)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
