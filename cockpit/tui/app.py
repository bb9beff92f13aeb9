"""`psa-cockpit` with no subcommand: the Textual cockpit.

Five sections, one key each (F2-F6, or 1-5 outside text boxes): Presets, Cost, Build, Jobs, Run/Logs.
Screens call the engine (cockpit.presets, catalog, estimate, image, local_runs, vertex) and hold no
cloud logic. Slow work runs in thread workers that report back with `call_from_thread`; a failed
worker becomes an error dialog with the engine's one-line message (`worker_state_changed`).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from core.config import ConfigError
from cockpit.errors import EXIT_USAGE, CockpitError
from cockpit.presets import PresetDocument
from cockpit.tui.commands import CockpitCommands
from cockpit.tui.dialogs import ConfirmDialog, ErrorDialog, HelpScreen
from cockpit.tui.logview import LogView
from cockpit.tui.sections import Section
from cockpit.tui.sections.build import BuildSection
from cockpit.tui.sections.cost import Alternative, CostPanel, CostSection, EstimateResult
from cockpit.tui.sections.jobs import JobsSection
from cockpit.tui.paths import short_paths, show_path
from cockpit.tui.sections.presets import PresetsSection
from cockpit.tui.sections.run import RunSection

SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("presets", "Presets", "f2", "1"), ("cost", "Cost", "f3", "2"), ("build", "Build", "f4", "3"),
    ("jobs", "Jobs", "f5", "4"), ("run", "Run/Logs", "f6", "5"))
ESTIMATE_DEBOUNCE_S = 0.25


def one_line(exc: BaseException) -> str:
    """A worker's exception as the one line a dialog shows."""
    if isinstance(exc, CockpitError):
        return exc.message
    if isinstance(exc, ConfigError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


class CockpitApp(App):
    CSS_PATH = Path(__file__).with_name("cockpit.tcss")  # absolute: subclasses elsewhere find it too
    TITLE = "psa-cockpit"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    AUTO_FOCUS = "#preset-form"  # the footer then shows the Presets keys; q still quits
    BINDINGS = [
        *(Binding(f"{fkey},{digit}", f"section('{sid}')", title, id=f"section.{sid}", key_display=fkey.upper(),
                  tooltip=f"Show the {title} section ({fkey.upper()}, or {digit} outside a text box)")
          for sid, title, fkey, digit in SECTIONS),
        Binding("f1,question_mark", "help", "Help", id="app.help", key_display="F1/?",
                tooltip="List every key binding"),
        Binding("q", "quit_cockpit", "Quit", id="app.quit",
                tooltip="Quit (asks first if a local run is training or the preset has unsaved changes)"),
        Binding("ctrl+q", "quit_cockpit", "Quit", id="app.quit_anywhere", show=False, priority=True,
                tooltip="Quit from anywhere, even a text box (asks first like q)"),
    ]

    def __init__(self, preset_path: str | os.PathLike | None = None, *, runs_dir: str | os.PathLike = "outputs/runs",
                 catalog: Any = None, backends: Any = None):
        super().__init__()
        from cockpit.catalog import load_catalog
        from cockpit.tui.backends import Backends

        self.catalog = catalog or load_catalog()
        self.doc = PresetDocument.load(preset_path or "local", self.catalog)
        self.backends = backends or Backends(runs_dir)
        self.cfg: Any = None            # the last valid Config of the document (None while invalid)
        self.validation_error = ""
        self.estimate_result = EstimateResult()
        self._estimate_timer: Any = None

    # -- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="presets", id="sections"):
            with TabPane(f"1 Presets", id="presets"):
                yield PresetsSection(id="presets-section")
            with TabPane("2 Cost", id="cost"):
                yield CostSection(id="cost-section")
            with TabPane("3 Build", id="build"):
                yield BuildSection(id="build-section")
            with TabPane("4 Jobs", id="jobs"):
                yield JobsSection(id="jobs-section")
            with TabPane("5 Run/Logs", id="run"):
                yield RunSection(id="run-section")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = show_path(self.doc.path)
        self.validate_document()
        self.schedule_estimate(delay=0)

    # -- sections ----------------------------------------------------------------------------------------

    @property
    def presets_section(self) -> PresetsSection:
        return self.query_one(PresetsSection)

    @property
    def run_section(self) -> RunSection:
        return self.query_one(RunSection)

    @property
    def jobs_section(self) -> JobsSection:
        return self.query_one(JobsSection)

    @property
    def active_section(self) -> str:
        return self.query_one("#sections", TabbedContent).active

    def sections(self) -> list[Section]:
        return list(self.query(Section).results(Section))

    def section_titles(self) -> list[tuple[str, str]]:
        return [(sid, title) for sid, title, _, _ in SECTIONS]

    def active_section_widget(self) -> Section | None:
        for section in self.sections():
            if section.SECTION_ID == self.active_section:
                return section
        return None

    def action_section(self, section_id: str) -> None:
        self.query_one("#sections", TabbedContent).active = section_id
        self._section_shown(section_id)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._section_shown(event.pane.id or "")

    def _section_shown(self, section_id: str) -> None:
        if section_id == "jobs":
            self.jobs_section.refresh_jobs()
            self.jobs_section.table.focus()
        elif section_id == "build":
            self.query_one(BuildSection).show_target()
            self.query_one("#build-log", LogView).log.focus()
        elif section_id == "cost":
            self.query_one("#cost-table").focus()
        elif section_id == "presets":
            self.presets_section.form.focus()
        elif section_id == "run":
            self.run_section.log_view.log.focus()

    async def goto_and_run(self, section: Section, action: str) -> None:
        self.action_section(section.SECTION_ID)
        await section.run_action(action)

    # -- the preset --------------------------------------------------------------------------------------

    def open_preset(self, path: Path) -> None:
        try:
            self.doc = PresetDocument.load(path, self.catalog)
        except CockpitError as exc:
            self.show_error(exc.message)
            return
        self.sub_title = show_path(self.doc.path)
        self.presets_section.show_document()
        self.preset_edited()

    def preset_edited(self) -> None:
        """After any change to the document: validate now (fast), estimate soon (in a worker)."""
        self.validate_document()
        self.schedule_estimate()

    def validate_document(self) -> None:
        try:
            self.cfg, self.validation_error = self.doc.validate(), ""
        except CockpitError as exc:
            self.cfg, self.validation_error = None, exc.message
        self.presets_section.show_validation(self.validation_error)
        if self.active_section == "build":
            self.query_one(BuildSection).show_target()

    def schedule_estimate(self, delay: float = ESTIMATE_DEBOUNCE_S) -> None:
        """Estimate once typing pauses for `delay` seconds (each keystroke restarts the wait)."""
        if self._estimate_timer is not None:
            self._estimate_timer.stop()
        if self.cfg is None:
            self._show_estimate(EstimateResult(error=self.validation_error))
            return
        cfg = self.cfg
        self._estimate_timer = self.set_timer(max(delay, 0.001), lambda: self._estimate(cfg))

    @work(thread=True, exclusive=True, exit_on_error=False, group="estimate")
    def _estimate(self, cfg: Any) -> None:
        from cockpit.estimate import default_step_time, estimate, step_time_from_runs

        catalog = self.catalog
        try:
            step = step_time_from_runs(cfg) or default_step_time(cfg, catalog)
            main = estimate(cfg, catalog, step_time=step)
        except CockpitError as exc:
            self.call_from_thread(self._show_estimate, EstimateResult(error=exc.message))
            return
        alternatives = []
        region = cfg.cloud.region
        for machine in catalog.machine_types(region):
            accs = catalog.accelerators_for(machine, region)
            options = ([""] if catalog.machine(machine).cpu_only else []) + accs
            for acc in options:
                for count in catalog.allowed_counts(machine, acc):
                    cloud = dataclasses.replace(cfg.cloud, machine_type=machine, accelerator_type=acc,
                                                accelerator_count=count)
                    try:
                        e = estimate(dataclasses.replace(cfg, cloud=cloud), catalog, step_time=step)
                    except CockpitError:
                        continue
                    alternatives.append(Alternative(machine, acc, count, e.hours, e.on_demand_usd, e.spot_usd))
        alternatives.sort(key=lambda a: a.on_demand_usd)
        self.call_from_thread(self._show_estimate, EstimateResult(main, "", alternatives))

    def _show_estimate(self, result: EstimateResult) -> None:
        result.error = short_paths(result.error)
        self.estimate_result = result
        self.query_one("#preset-cost", CostPanel).show(result)
        c = self.cfg.cloud if self.cfg is not None else None
        current = (c.machine_type, c.accelerator_type, c.accelerator_count) if c else None
        self.query_one(CostSection).show(result, current)

    # -- jobs --------------------------------------------------------------------------------------------

    def open_job(self, info: Any) -> None:
        """Show a job (local or Vertex) in Run/Logs and follow it."""
        try:
            backend = self.backends.for_job(info, self.cfg)
        except CockpitError as exc:
            self.show_error(exc.message)
            return
        self.action_section("run")
        self.run_section.follow(backend, info)

    # -- errors, help, quit ------------------------------------------------------------------------------

    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker turns into a dialog (never a crash)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(one_line(event.worker.error))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_state_changed(event)

    def show_error(self, message: str) -> None:
        message = short_paths(message)
        top = self.screen
        if isinstance(top, ErrorDialog) and top.message == message:
            return
        self.push_screen(ErrorDialog(message))

    def help_rows(self) -> list[tuple[str, str, str, str]]:
        rows = []

        def add(where: str, bindings: Iterator[Binding] | list) -> None:
            for b in bindings:
                if isinstance(b, Binding) and not b.system:
                    keys = ", ".join(k.strip() for k in b.key.split(","))
                    rows.append((where, keys, b.description or b.action, b.tooltip))

        add("anywhere", self.BINDINGS)
        for section in (PresetsSection, CostSection, BuildSection, JobsSection, RunSection):
            add(section.TITLE, section.BINDINGS)
        add("log views", LogView.BINDINGS)
        add("dialogs", ConfirmDialog.BINDINGS)
        add("help", HelpScreen.BINDINGS)
        rows.append(("anywhere", "ctrl+p", "Command palette", "Search the cockpit's actions (current section first)"))
        return rows

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_rows()))

    def action_quit_cockpit(self) -> None:
        reasons = []
        run = self.run_section.active_local_run
        if run is not None:
            reasons.append(f"the local run {run.id} is still training (it keeps running after you quit; "
                           f"`psa-cockpit jobs` lists it)")
        if self.doc.dirty:
            reasons.append(f"{show_path(self.doc.path)} has unsaved changes")
        if not reasons:
            self.exit(0)
            return
        self.push_screen(ConfirmDialog("Quit? " + "; ".join(reasons) + ".", yes="Quit", no="Stay"),
                         lambda yes: self.exit(0) if yes else None)


def run_tui(preset_path: str | None) -> int:
    """Open the cockpit on `preset_path` (default: the `local` preset); returns the exit code."""
    try:
        app = CockpitApp(preset_path)
    except CockpitError as exc:
        print(f"psa-cockpit: {exc.message}", file=sys.stderr)
        return exc.exit_code or EXIT_USAGE
    result = app.run()
    return result if isinstance(result, int) else 0
