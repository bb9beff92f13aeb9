"""Modal dialogs: confirm, error (one line from a CockpitError), a one-field prompt, and the help screen."""
from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


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
