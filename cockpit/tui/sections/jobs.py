"""Jobs: local runs and Vertex AI jobs in one live table, refreshed in place by a worker thread; below it,
this tool's Vertex AI endpoints with their cost per hour (shown once there are any). `d` deploys a
succeeded job's model, `u` undeploys the selected endpoint; both ask first and run cockpit.serving."""
from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from cockpit.backend import JobInfo, short_state
from cockpit.errors import CockpitError
from cockpit.jobs import COLUMNS, job_row, resolve_project
from cockpit.serving import ENDPOINT_COLUMNS, IDLE_WARNING, endpoint_row, service_for
from cockpit.tui.dialogs import ConfirmDialog
from cockpit.tui.sections import Section

REFRESH_S = 3.0
STATE_STYLES = {"RUNNING": "bold green", "SUCCEEDED": "cyan", "FAILED": "bold red", "CANCELLED": "yellow",
                "CANCELLING": "yellow", "QUEUED": "magenta", "PENDING": "magenta", "EXPIRED": "red",
                "PAUSED": "dim", "UPDATING": "dim", "PARTIALLY_SUCCEEDED": "yellow"}
NAME_WIDTH = 22


def state_text(state: str) -> Text:
    s = short_state(state)
    return Text(s, style=STATE_STYLES.get(s, ""))


def cells(info: JobInfo, now: datetime) -> tuple:
    """The engine's row (cockpit.jobs.job_row), with the state coloured and long names cut."""
    row = job_row(info, now)
    name = row.name if len(row.name) <= NAME_WIDTH else row.name[:NAME_WIDTH - 1] + "…"
    return (row.id, name, state_text(info.state), row.machine, row.age, row.cost)


class JobsSection(Section):
    SECTION_ID = "jobs"
    TITLE = "Jobs"
    BINDINGS = [
        Binding("enter", "open", "Open", id="jobs.open", tooltip="Show the job's log and curves in Run/Logs"),
        Binding("c", "cancel_job", "Cancel job", id="jobs.cancel", tooltip="Cancel the selected job (asks first)"),
        Binding("p", "pull", "Pull model", id="jobs.pull", tooltip="Download the model of a finished job"),
        Binding("d", "deploy", "Deploy", id="jobs.deploy",
                tooltip="Serve a succeeded job's model on a Vertex AI endpoint (shows the hourly cost, asks first)"),
        Binding("u", "undeploy", "Undeploy", id="jobs.undeploy",
                tooltip="Undeploy the selected endpoint's model: it stops billing (asks first)"),
        Binding("ctrl+r", "refresh", "Refresh", id="jobs.refresh", tooltip="Refresh the table now"),
    ]
    PALETTE = [("Open the selected job", "Follow its log in Run/Logs (enter)", "open"),
               ("Cancel the selected job", "Asks first (c)", "cancel_job"),
               ("Pull the selected job's model", "Download the exported model (p)", "pull"),
               ("Deploy the selected job's model", "Vertex AI endpoint; hourly cost shown first (d)", "deploy"),
               ("Undeploy the selected endpoint", "Stops its hourly billing (u)", "undeploy"),
               ("Refresh the job list", "List local runs and Vertex AI jobs now (ctrl+r)", "refresh")]

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.jobs: dict[str, JobInfo] = {}
        self.endpoints: list = []
        self.note = ""

    def compose(self) -> ComposeResult:
        yield Label("", id="jobs-note", classes="hint")
        table = DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table
        with Vertical(id="endpoints"):
            yield Label("Endpoints: each bills per hour while a model is deployed, requests or not (u undeploys)",
                        classes="hint")
            endpoints = DataTable(id="endpoints-table", cursor_type="row")
            for name in ENDPOINT_COLUMNS:
                endpoints.add_column(name, key=name)
            yield endpoints

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self._tick)

    def shown(self) -> None:
        self.refresh_jobs()
        self.table.focus()

    def _tick(self) -> None:
        if self.cockpit.active_section == self.SECTION_ID:
            self.refresh_jobs()

    @property
    def table(self) -> DataTable:
        return self.query_one("#jobs-table", DataTable)

    # -- refreshing --------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs")
    def refresh_jobs(self) -> None:
        app = self.cockpit
        jobs, note = app.backends.list_jobs(app.cfg)
        app.call_from_thread(self.show_jobs, jobs, note)
        if resolve_project(app.cfg):
            try:
                endpoints = service_for(app.cfg).list()
            except CockpitError:  # no credentials or no API: the jobs note already says why
                return
            app.call_from_thread(self.show_endpoints, endpoints)

    def show_endpoints(self, endpoints: list) -> None:
        """The endpoints table (cockpit.serving.endpoint_row); hidden while there are none."""
        self.endpoints = list(endpoints)
        self.query_one("#endpoints").display = bool(self.endpoints)
        table = self.query_one("#endpoints-table", DataTable)
        row = table.cursor_row
        table.clear()
        for e in self.endpoints:
            table.add_row(*endpoint_row(e), key=e.id)
        if self.endpoints:
            table.move_cursor(row=min(max(row, 0), len(self.endpoints) - 1))

    def show_jobs(self, jobs: list[JobInfo], note: str, now: datetime | None = None) -> None:
        """Update the table in place: changed cells only, new rows added, vanished rows removed."""
        now = now or datetime.now(timezone.utc)
        self.note = note
        self.query_one("#jobs-note", Label).update(note)
        table = self.table
        fresh = {f"{j.backend}:{j.id}": j for j in jobs}
        for key in list(self.jobs):
            if key not in fresh:
                table.remove_row(key)
        for key, info in fresh.items():
            row = cells(info, now)
            if key in self.jobs:
                for column, value in zip(COLUMNS, row):
                    table.update_cell(key, column, value)
            else:
                table.add_row(*row, key=key)
        self.jobs = fresh

    def selected(self) -> JobInfo | None:
        table = self.table
        if not self.jobs or table.cursor_row < 0 or table.cursor_row >= table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self.jobs.get(key or "")

    # -- actions -----------------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.refresh_jobs()

    async def action_open(self) -> None:
        info = self.selected()
        if info is not None:
            await self.cockpit.open_job(info)

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        await self.action_open()

    def action_cancel_job(self) -> None:
        info = self.selected()
        if info is None:
            return
        if info.terminal:
            self.notify(f"{info.id} already ended ({short_state(info.state)})", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(info)

        self.app.push_screen(ConfirmDialog(f"Cancel {info.backend} job {info.name} ({info.id}, "
                                           f"{short_state(info.state)})?", yes="Cancel job", no="Keep"),
                             answered)

    @work(thread=True, exit_on_error=False, group="jobs-cancel")
    def _cancel(self, info: JobInfo) -> None:
        app = self.cockpit
        backend = app.backends.for_job(info.id, app.cfg)
        after = backend.cancel(info.id)
        app.call_from_thread(self.notify, f"{info.id}: {short_state(after.state)}", timeout=4)
        app.call_from_thread(self.refresh_jobs)

    def action_pull(self) -> None:
        info = self.selected()
        if info is not None:
            self.cockpit.pull(info)

    # -- serving (cockpit.serving does the work; this draws and asks) -------------------------------------

    def action_deploy(self) -> None:
        from cockpit.backend import JobState

        info = self.selected()
        if info is None:
            return
        if info.state != JobState.SUCCEEDED or info.backend != "vertex":
            why = ("a local run's model is on this machine: serve it with python -m core.serve --model DIR"
                   if info.backend != "vertex" else f"{info.id} is {short_state(info.state)}: only a succeeded "
                   "job has an exported model to deploy")
            self.cockpit.show_error(why, title="Deploy")
            return
        self.notify(f"pricing an endpoint for {info.id}...", timeout=3)
        self._plan_deploy(info)

    @work(thread=True, exclusive=True, exit_on_error=False, group="deploy")
    def _plan_deploy(self, info: JobInfo) -> None:
        from cockpit.serving import default_image, model_dir_of_job

        service = service_for(self.cockpit.cfg)
        plan = service.plan(model_dir_of_job(info))
        self.cockpit.call_from_thread(self._confirm_deploy, info, service, plan, default_image(service))

    def _confirm_deploy(self, info: JobInfo, service, plan, image_uri: str) -> None:
        async def answered(yes: bool | None) -> None:
            if yes:
                build = await self.cockpit.ensure_build()  # Build may not have been shown yet
                cancel = build.begin()
                await self.cockpit.action_section("build")
                self._deploy(service, plan, image_uri, build, cancel)

        self.app.push_screen(ConfirmDialog(f"Deploy the model of {info.name} ({info.id})?\n{plan.cost_line()}\n"
                                           f"Warning: {IDLE_WARNING}.", yes="Deploy", no="Keep off"), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="deploy")
    def _deploy(self, service, plan, image_uri: str, build, cancel) -> None:
        from cockpit.serving import cost_per_hour, deploy_with_image

        try:
            endpoint = deploy_with_image(service, plan, image_uri, build.sink, cancel=cancel)
        except BaseException as exc:
            build.finish_from_thread(exc)
            if not cancel.is_set():
                raise
            return
        build.finish_from_thread(None)
        self.cockpit.call_from_thread(
            self.notify, f"deployed to endpoint {endpoint.id}: {cost_per_hour(endpoint.hourly_cost_usd)} while "
                         "deployed; u in Jobs undeploys it", timeout=8)
        self.cockpit.call_from_thread(self.refresh_jobs)

    def selected_endpoint(self):
        table = self.query_one("#endpoints-table", DataTable)
        if not self.endpoints or not 0 <= table.cursor_row < len(self.endpoints):
            return None
        return self.endpoints[table.cursor_row]

    def action_undeploy(self) -> None:
        from cockpit.serving import cost_per_hour

        endpoint = self.selected_endpoint()
        if endpoint is None:
            self.notify("no endpoint to undeploy", severity="warning")
            return
        if not endpoint.deployed:
            self.notify(f"endpoint {endpoint.id} has no deployed model (nothing is billing)", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._undeploy(endpoint)

        self.app.push_screen(ConfirmDialog(
            f"Undeploy the model of endpoint {endpoint.name} ({endpoint.id})? It stops billing "
            f"{cost_per_hour(endpoint.hourly_cost_usd)}.", yes="Undeploy", no="Keep"), answered)

    @work(thread=True, exit_on_error=False, group="undeploy")
    def _undeploy(self, endpoint) -> None:
        service_for(self.cockpit.cfg).undeploy(endpoint.id)
        self.cockpit.call_from_thread(self.notify, f"endpoint {endpoint.id}: undeployed; it no longer bills",
                                      timeout=6)
        self.cockpit.call_from_thread(self.refresh_jobs)
