"""`psa-cockpit` with no subcommand: the Textual cockpit.

Five sections, one key each (F2-F6, or 1-5 outside text boxes): Presets, Cost, Build, Jobs, Run/Logs;
F7 submits the open preset to Vertex AI. Screens call the engine (cockpit.presets, estimate, jobs,
submit, image, local_runs, vertex: the same functions as the headless CLI) and hold no cloud logic.
Slow work runs in thread workers that report back with `call_from_thread`, and cloud SDKs are imported
inside those workers; a failed worker becomes an error dialog with the engine's one-line message
(`worker_state_changed`): the app never exits on an error.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, cast

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from core.config import ConfigError
from cockpit.errors import EXIT_USAGE, CockpitError
from cockpit.presets import PresetDocument
from cockpit.tui.commands import CockpitCommands
from cockpit.tui.estimate_panel import CostPanel, EstimateResult
from cockpit.tui.form import PresetForm
from cockpit.tui.paths import short_paths, show_path
from cockpit.tui.sections import Section
from cockpit.tui.sections.presets import PresetsSection
from cockpit.tui.startup import pause_gc, resume_gc

if TYPE_CHECKING:  # imported when first shown (SECTION_CLASSES); named here for the typed accessors only
    from cockpit.tui.sections.build import BuildSection
    from cockpit.tui.sections.cost import CostSection
    from cockpit.tui.sections.jobs import JobsSection
    from cockpit.tui.sections.run import RunSection

SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("presets", "Presets", "f2", "1"), ("cost", "Cost", "f3", "2"), ("build", "Build", "f4", "3"),
    ("jobs", "Jobs", "f5", "4"), ("run", "Run/Logs", "f6", "5"))
# Where each section's class lives. Only the first one (Presets) is imported and built at start-up; every
# other one is imported and built the first time it is shown (`ensure_section`), so the first paint pays
# for one section's widgets and imports (no DataTable, plots, plotext...). A new section adds a line here
# and one to SECTIONS; it reads what it shows from the app in its on_mount.
SECTION_CLASSES: dict[str, str] = {
    "presets": "cockpit.tui.sections.presets:PresetsSection", "cost": "cockpit.tui.sections.cost:CostSection",
    "build": "cockpit.tui.sections.build:BuildSection", "jobs": "cockpit.tui.sections.jobs:JobsSection",
    "run": "cockpit.tui.sections.run:RunSection",
}
FIRST_SECTION = "presets"


def section_class(section_id: str) -> type[Section]:
    module, _, name = SECTION_CLASSES[section_id].partition(":")
    return cast("type[Section]", getattr(importlib.import_module(module), name))
ESTIMATE_DEBOUNCE_S = 0.25


def one_line(exc: BaseException) -> str:
    """A worker's exception as the one line a dialog shows."""
    if isinstance(exc, CockpitError):
        return exc.message
    if isinstance(exc, ConfigError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


class CockpitScreen(Screen):
    """The cockpit's main screen. Textual restyles every widget of a screen when it is resumed; on the
    first resume, at start-up, each one was styled moments before, when it mounted, so that pass repeated
    the work: 5% of the time to the first paint (tui_bench.py). Later resumes are Textual's own."""

    _resumed = False

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        if not self._resumed:
            self._resumed = True
            event = events.ScreenResume(refresh_styles=False)
        super()._on_screen_resume(event)


class CockpitApp(App):
    CSS_PATH = Path(__file__).with_name("cockpit.tcss")  # absolute: subclasses elsewhere find it too
    TITLE = "psa-cockpit"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    AUTO_FOCUS = "#preset-form"  # the footer then shows the Presets keys; q still quits
    BINDINGS = [
        # first, so the footer shows it even on a narrow terminal
        Binding("f7", "submit_vertex", "Submit to Vertex", id="app.submit", key_display="F7",
                tooltip="Submit the open preset to Vertex AI: validate, confirm (machine, GPUs, cost, image), "
                        "build and push if needed, create the job and follow it in Run/Logs"),
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

        self.catalog = catalog or load_catalog()
        self.doc = PresetDocument.load(preset_path or "local", self.catalog)
        self._backends, self._runs_dir = backends, runs_dir  # `backends`: made when first needed
        self.cfg: Any = None            # the last valid Config of the document (None while invalid)
        self.validation_error = ""
        self.estimate_result = EstimateResult()
        self._estimate_timer: Any = None
        self.submitting = False         # a submit is between F7 and its job (or its failure)
        self.submitted: Any = None      # the JobInfo of the last job this app submitted
        self.pulled: Path | None = None  # where the last pull put a model
        self._mounting: dict[str, Any] = {}  # section id -> its pending mount (first show)

    # -- layout ------------------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        return CockpitScreen(id="_default")

    def compose(self) -> ComposeResult:
        with TabbedContent(initial=FIRST_SECTION, id="sections"):
            for sid, title, _, digit in SECTIONS:
                with TabPane(f"{digit} {title}", id=sid):
                    if sid == FIRST_SECTION:
                        yield self.build_section(sid)
        yield Footer()

    def on_load(self) -> None:
        pause_gc()  # until the form is complete (cockpit/tui/startup.py says why)

    def on_mount(self) -> None:
        self.sub_title = show_path(self.doc.path)
        self.validate_document()
        self.schedule_estimate(delay=0)

    def on_preset_form_started(self, event: PresetForm.Started) -> None:
        resume_gc()  # start-up is over (an app that ends sooner resumes it in on_unmount)

    def on_unmount(self) -> None:
        resume_gc()

    @property
    def backends(self) -> Any:
        """Local runs and Vertex AI jobs (cockpit.jobs.Backends), imported when a section or a submit
        first needs them: the first screen does not."""
        if self._backends is None:
            from cockpit.jobs import Backends

            self._backends = Backends(self._runs_dir)
        return self._backends

    # -- sections ----------------------------------------------------------------------------------------

    def build_section(self, section_id: str) -> Section:
        """A new widget for the section (tests and subclasses may adjust it here)."""
        return section_class(section_id)(id=f"{section_id}-section")

    def section(self, section_id: str) -> Section | None:
        """The section's widget, or None while it has not been shown yet."""
        try:
            return self.query_one(f"#{section_id}-section", Section)
        except NoMatches:
            return None

    async def ensure_section(self, section_id: str) -> Section:
        """The section's widget, built and mounted (with its children) the first time it is needed."""
        section = self.section(section_id)
        if section is None:
            section = self.build_section(section_id)
            self._mounting[section_id] = self.query_one(f"#{section_id}", TabPane).mount(section)
        pending = self._mounting.get(section_id)
        if pending is not None:
            await pending
            self._mounting.pop(section_id, None)
        return section

    @property
    def presets_section(self) -> PresetsSection:
        return self.query_one(PresetsSection)

    @property
    def run_section(self) -> RunSection:
        """The Run/Logs section, once shown."""
        return cast("RunSection", self.query_one("#run-section", Section))

    @property
    def jobs_section(self) -> JobsSection:
        """The Jobs section, once shown."""
        return cast("JobsSection", self.query_one("#jobs-section", Section))

    # Typed views of the lazily built sections: None while a section has not been shown yet.
    def shown_build(self) -> BuildSection | None:
        return cast("BuildSection | None", self.section("build"))

    def shown_cost(self) -> CostSection | None:
        return cast("CostSection | None", self.section("cost"))

    def shown_run(self) -> RunSection | None:
        return cast("RunSection | None", self.section("run"))

    async def ensure_build(self) -> BuildSection:
        return cast("BuildSection", await self.ensure_section("build"))

    @property
    def active_section(self) -> str:
        return self.query_one("#sections", TabbedContent).active

    def sections(self) -> list[Section]:
        """The sections built so far."""
        return list(self.query(Section).results(Section))

    def section_titles(self) -> list[tuple[str, str]]:
        return [(sid, title) for sid, title, _, _ in SECTIONS]

    def active_section_widget(self) -> Section | None:
        return self.section(self.active_section)

    async def action_section(self, section_id: str) -> None:
        tabs = self.query_one("#sections", TabbedContent)
        section = await self.ensure_section(section_id)  # built before its tab shows: never an empty tab
        if tabs.active != section_id:
            tabs.active = section_id  # TabActivated follows: on_tabbed_content_tab_activated calls shown()
        else:
            section.shown()

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # Also reached by a click on a tab, which may be the section's first show.
        (await self.ensure_section(event.pane.id or "")).shown()

    async def with_section(self, section_id: str, then: Callable[[Any], None]) -> None:
        """Show the section (built if needed), then call `then(section)`."""
        await self.action_section(section_id)
        then(self.section(section_id))

    async def goto_and_run(self, section_id: str, action: str) -> None:
        await self.action_section(section_id)
        section = self.section(section_id)
        if section is not None:
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
        build = self.shown_build()
        if build is not None and self.active_section == "build":
            build.show_target()

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
        from cockpit.estimate import estimate_with_alternatives

        try:
            main, alternatives = estimate_with_alternatives(cfg, self.catalog)
        except CockpitError as exc:
            self.call_from_thread(self._show_estimate, EstimateResult(error=exc.message))
            return
        self.call_from_thread(self._show_estimate, EstimateResult(main, "", alternatives))

    def _show_estimate(self, result: EstimateResult) -> None:
        result.error = short_paths(result.error)
        self.estimate_result = result
        self.query_one("#preset-cost", CostPanel).show(result)
        cost = self.shown_cost()
        if cost is not None:  # else it shows self.estimate_result when first built
            cost.show(result, self.estimate_target())

    def estimate_target(self) -> tuple[str, str, int] | None:
        """(machine, accelerator, count) of the preset, to mark its row in the Cost table."""
        c = self.cfg.cloud if self.cfg is not None else None
        return (c.machine_type, c.accelerator_type, c.accelerator_count) if c else None

    # -- jobs --------------------------------------------------------------------------------------------

    async def open_job(self, info: Any) -> None:
        """Show a job (local or Vertex) in Run/Logs and follow it."""
        try:
            backend = self.backends.for_job(info.id, self.cfg)
        except CockpitError as exc:
            self.show_error(exc.message)
            return
        await self.with_section("run", lambda run: run.follow(backend, info))

    def pull(self, info: Any) -> None:
        """Download a succeeded job's model to models/<job id> (Jobs and Run/Logs: p)."""
        from cockpit.backend import JobState, short_state

        if info.state != JobState.SUCCEEDED:
            self.show_error(f"{info.id} is {short_state(info.state)}: only a succeeded job has an exported "
                            "model to pull; wait for it to finish (Run/Logs follows it)")
            return
        self.notify(f"pulling the model of {info.id}...", timeout=3)
        self._pull(info)

    @work(thread=True, exit_on_error=False, group="pull")
    def _pull(self, info: Any) -> None:
        from cockpit.jobs import pull_model

        where = pull_model(self.backends.for_job(info.id, self.cfg), info)
        self.pulled = Path(where)
        self.call_from_thread(self.notify, f"model of {info.id} in {show_path(where)}", timeout=6)

    # -- submit to Vertex AI -----------------------------------------------------------------------------

    def action_submit_vertex(self) -> None:
        """F7: validate the open preset for a submit, then plan it (in a worker) and ask."""
        if self.submitting:
            self.notify("a submit is already under way (Build shows it; x cancels)", severity="warning")
            return
        try:
            cfg = self.doc.validate(submitting=True)
        except CockpitError as exc:
            self.show_error(f"not submitted: {exc.message}", title="Submit to Vertex AI")
            return
        self.submitting = True
        self.notify("preparing the submit (estimate, image tag, job)...", timeout=3)
        self._plan_submit(cfg, False)

    @work(thread=True, exclusive=True, exit_on_error=False, group="submit")
    def _plan_submit(self, cfg: Any, upload: bool) -> None:
        from cockpit.submit import plan_submit

        try:
            plan = plan_submit(cfg, catalog=self.catalog, upload_data=upload)
            if plan.over_budget:
                raise plan.budget_error(fix="raise cloud.max_cost_usd in Presets, or choose spot or a "
                                            "cheaper machine (the Cost section compares them)")
        except BaseException:
            self.call_from_thread(self._submit_over)
            raise
        self.call_from_thread(self._confirm_submit, plan)

    def _confirm_submit(self, plan: Any) -> None:
        from core import storage
        from cockpit.tui.dialogs import SubmitDialog

        splits = plan.cfg.data.splits
        can_upload = not storage.is_gcs(splits) and Path(splits).is_file()

        async def answered(answer: Any) -> None:
            if answer is None:
                self._submit_over()
                return
            if self.doc.dirty:  # the job runs the preset file baked into the image: save it first
                self.doc.save()
                self.presets_section.show_dirty()
            build = await self.ensure_build()
            cancel = build.begin()
            await self.action_section("build")
            self._launch(plan, answer.upload, cancel, build)

        self.push_screen(SubmitDialog(plan.summary(), plan.warnings, can_upload, self.doc.dirty), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="submit")
    def _launch(self, plan: Any, upload: bool, cancel: Any, build: Any) -> None:
        from cockpit.submit import launch, plan_submit

        try:
            if upload and plan.upload is None:  # the job reads the uploaded copy: plan it again with it
                plan = plan_submit(plan.cfg, catalog=self.catalog, tag=plan.tag, display_name=plan.display_name,
                                   upload_data=True)
            backend = self.backends.require_vertex(plan.cfg)
            info = launch(plan, backend, build.sink, cancel=cancel)
        except BaseException as exc:
            build.finish_from_thread(exc)
            self.call_from_thread(self._submit_over)
            if not cancel.is_set():
                raise
            return
        build.finish_from_thread(None)
        self.call_from_thread(self._submitted, backend, info)

    async def _submitted(self, backend: Any, info: Any) -> None:
        self._submit_over()
        self.notify(f"submitted {info.name} ({info.id}); following it here", timeout=6)
        await self.with_section("run", lambda run: run.follow(backend, info))
        self.submitted = info  # set once Run/Logs follows it (that section is built on first show)

    def _submit_over(self) -> None:
        self.submitting = False

    # -- errors, help, quit ------------------------------------------------------------------------------

    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker turns into a dialog (never a crash)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(one_line(event.worker.error))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_state_changed(event)

    def show_error(self, message: str, title: str = "Error") -> None:
        from cockpit.tui.dialogs import ErrorDialog  # like every dialog, imported when first needed

        message = short_paths(message)
        top = self.screen
        if isinstance(top, ErrorDialog) and top.message == message:
            return
        self.push_screen(ErrorDialog(message, title))

    def help_rows(self) -> list[tuple[str, str, str, str]]:
        from cockpit.tui.dialogs import ConfirmDialog, HelpScreen, SubmitDialog

        rows = []

        def add(where: str, bindings: Iterator[Binding] | list) -> None:
            for b in bindings:
                if isinstance(b, Binding) and not b.system:
                    keys = ", ".join(k.strip() for k in b.key.split(","))
                    rows.append((where, keys, b.description or b.action, b.tooltip))

        add("anywhere", self.BINDINGS)
        for sid, _, _, _ in SECTIONS:
            section = section_class(sid)
            add(section.TITLE, section.BINDINGS)
        from cockpit.tui.logview import LogView

        add("log views", LogView.BINDINGS)
        add("dialogs", ConfirmDialog.BINDINGS)
        add("submit dialog", SubmitDialog.BINDINGS)
        add("help", HelpScreen.BINDINGS)
        rows.append(("anywhere", "ctrl+p", "Command palette", "Search the cockpit's actions (current section first)"))
        return rows

    def action_help(self) -> None:
        from cockpit.tui.dialogs import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_rows()))

    def action_quit_cockpit(self) -> None:
        from cockpit.tui.dialogs import ConfirmDialog

        reasons = []
        section = self.shown_run()
        run = section.active_local_run if section is not None else None
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
        resume_gc()  # the CLI paused it for the start-up that ends here
        print(f"psa-cockpit: {exc.message}", file=sys.stderr)
        return exc.exit_code or EXIT_USAGE
    try:
        result = app.run()
    finally:
        resume_gc()  # the app resumes it once the form is complete; this covers an app that never got there
    return result if isinstance(result, int) else 0
