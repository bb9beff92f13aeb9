"""Jobs: local runs and Vertex AI jobs in one live table, refreshed in place by a worker thread."""
from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label

from cockpit.backend import JobInfo, short_state
from cockpit.jobs import COLUMNS, job_row
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
        Binding("ctrl+r", "refresh", "Refresh", id="jobs.refresh", tooltip="Refresh the table now"),
    ]
    PALETTE = [("Open the selected job", "Follow its log in Run/Logs (enter)", "open"),
               ("Cancel the selected job", "Asks first (c)", "cancel_job"),
               ("Pull the selected job's model", "Download the exported model (p)", "pull"),
               ("Refresh the job list", "List local runs and Vertex AI jobs now (ctrl+r)", "refresh")]

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.jobs: dict[str, JobInfo] = {}
        self.note = ""

    def compose(self) -> ComposeResult:
        yield Label("", id="jobs-note", classes="hint")
        table = DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self._tick)

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

    def action_open(self) -> None:
        info = self.selected()
        if info is not None:
            self.cockpit.open_job(info)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

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
