"""Modal dialogs: confirm, error (one line from a CockpitError), a one-field prompt, and the help screen."""
from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no question; dismisses with True only for an explicit yes."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Answer yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Answer no (Esc)"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No"):
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} [y]", id="yes", variant="warning")
                yield Button(f"{self.no} [n]", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


@dataclass(frozen=True)
class SubmitAnswer:
    upload: bool  # upload the local data set first


class SubmitDialog(ModalScreen[SubmitAnswer | None]):
    """The submit confirmation: what will run, for how long, at what cost, from which image."""

    BINDINGS = [
        Binding("y", "answer(True)", "Submit", id="submit.yes", tooltip="Build if needed, then create the job"),
        Binding("n,escape", "answer(False)", "Cancel", id="submit.no", tooltip="Submit nothing (Esc)"),
    ]

    def __init__(self, rows: list[tuple[str, str]], warnings: list[str], can_upload: bool, saves: bool):
        super().__init__()
        self.rows, self.warnings, self.can_upload, self.saves = rows, warnings, can_upload, saves

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for label, value in self.rows:
            table.add_row(label, value)
        with Vertical(classes="dialog submit-dialog"):
            yield Label("Submit to Vertex AI?", classes="dialog-title")
            yield Static(table, id="submit-summary")
            for warning in self.warnings:
                yield Static(f"warning: {warning}", classes="dialog-hint", markup=False)
            if self.saves:
                yield Label("The preset has unsaved changes: submitting saves them first.", classes="dialog-hint")
            if self.can_upload:
                yield Checkbox("upload the data set first (data.splits folder)", id="submit-upload", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Submit [y]", id="yes", variant="warning")
                yield Button("Cancel [n]", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        upload = self.can_upload and self.query_one("#submit-upload", Checkbox).value
        self.dismiss(SubmitAnswer(upload) if yes else None)


class ErrorDialog(ModalScreen[None]):
    """A failure in one line (the engine's message), never a traceback."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close", id="error.close", tooltip="Close this message")]

    def __init__(self, message: str, title: str = "Error"):
        super().__init__()
        self.message, self.title_text = message, title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-text", id="error-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK [enter]", id="ok", variant="error")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)


class PromptDialog(ModalScreen[str | None]):
    """Ask for one line of text (a file name); None when cancelled."""

    AUTO_FOCUS = "#prompt-input"  # the app's own AUTO_FOCUS names the preset form

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel", tooltip="Close without doing anything")]

    def __init__(self, question: str, value: str = ""):
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-text")
            yield Input(self.value, id="prompt-input")
            yield Label("enter: OK   esc: cancel", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key binding of the cockpit, by where it works (F1 / ?)."""

    AUTO_FOCUS = "*"

    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close help", id="help.close",
                        tooltip="Close the help screen")]

    def __init__(self, rows: list[tuple[str, str, str, str]]):
        super().__init__()
        self.rows = rows  # (where, keys, description, tooltip)

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("where", style="cyan", no_wrap=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action", no_wrap=True)
        table.add_column("what it does", ratio=1)
        last = None
        for where, keys, description, tooltip in self.rows:
            table.add_row(where if where != last else "", keys, description, tooltip)
            last = where
        with Vertical(classes="dialog help-dialog"):
            yield Label("psa-cockpit keys  (ctrl+p: command palette, esc: close)", classes="dialog-title")
            with VerticalScroll():
                yield Static(table, id="help-table")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
