"""Presets: pick a preset file, edit it in a schema-driven form with live validation and a live cost
panel, save it (comments kept by the engine), or derive a new preset that `extends` it."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Label, Select, Static

from cockpit.errors import CockpitError
from cockpit.tui.estimate_panel import CostPanel
from cockpit.tui.form import FORM_SECTIONS, PresetForm
from cockpit.tui.paths import short_paths, show_path
from cockpit.tui.sections import Section


def preset_files(current: Path | None) -> list[Path]:
    found = sorted(p.resolve() for p in Path("presets").glob("*.toml")) if Path("presets").is_dir() else []
    if current is not None and current.resolve() not in found:
        found.append(current.resolve())
    return found


class PickerStandIn(Static):
    """The preset picker as the first frame shows it: the file's name and the Select's arrow, as text. A
    Select with its option list took 4% of the time to the first paint (tui_bench.py), so the section
    mounts the real one in its place right after that paint."""

    def __init__(self, name: str):
        width = 40 - 3  # the picker's width less the arrow and the padding around it
        super().__init__(Content.assemble(name.ljust(width)[:width], " ", ("▼", "$foreground 50%")),
                         id="preset-picker-stand-in")


class PresetsSection(Section):
    SECTION_ID = "presets"
    TITLE = "Presets"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="presets.save", tooltip="Write the preset file (comments kept)"),
        # F-keys work in a text box too; the brackets (as in "[data]") outside one, like the section digits.
        # Not in the footer: at 100 columns F9 pushed the section keys (F3, F4) off; the bar's tooltip, F1
        # and the palette name it.
        Binding("f9,right_square_bracket", "form_step(1)", "Next section", id="presets.next_section",
                key_display="F9", show=False,
                tooltip="Show the preset's next section ([data], [model], ...; F9, or ] outside a text box)"),
        Binding("f8,left_square_bracket", "form_step(-1)", "Previous section", id="presets.previous_section",
                key_display="F8", show=False,
                tooltip="Show the preset's previous section (F8, or [ outside a text box)"),
        Binding("ctrl+n", "new_from", "New from this", id="presets.new_from",
                tooltip="Write a new preset file that extends this one"),
        Binding("ctrl+o", "pick", "Open", id="presets.open", tooltip="Choose another preset file"),
    ]
    PALETTE = [
        ("Save the preset", "Write the file, keeping its comments (ctrl+s)", "save"),
        ("New preset from this one", "Write a file that extends the current preset (ctrl+n)", "new_from"),
        ("Open another preset", "Focus the preset picker (ctrl+o)", "pick"),
        *((f"Edit the {section} section", f"Show the preset's {section} rows (F8/F9 step through the sections)",
           f"form_section('{section}')") for section in FORM_SECTIONS),
    ]
    _validation = ""  # the document's last validation message (show_validation)

    def compose(self) -> ComposeResult:
        app = self.cockpit
        with Horizontal(id="preset-bar"):
            yield Label("preset", classes="bar-label")
            doc = app.doc
            yield PickerStandIn(show_path(doc.path))
            yield Label("", id="preset-dirty")
        with Horizontal(id="preset-body"):
            yield PresetForm(app.catalog, doc, id="preset-form")
            with Vertical(id="preset-side"):
                yield Label("cost estimate", classes="panel-title")
                yield CostPanel("estimating...", id="preset-cost")
                yield Label("validation", classes="panel-title")
                yield Static("", id="preset-status", markup=False)

    def on_mount(self) -> None:
        self.call_after_refresh(self._mount_picker)

    async def _mount_picker(self) -> None:
        """The real picker, in place of its stand-in (after the first paint), for the document open now."""
        bar = self.query_one("#preset-bar")
        if not bar.is_attached:  # the app quit before its first refresh
            return
        doc = self.cockpit.doc
        picker = Select([(show_path(p), str(p)) for p in preset_files(doc.path)], value=str(doc.path),
                        id="preset-picker", compact=True, allow_blank=False, tooltip="Preset files in ./presets")
        picker.display = False
        stand_in = self.query_one(PickerStandIn)
        await bar.mount(picker, after=stand_in)
        picker.display, stand_in.display = True, False  # in one frame: never both, never neither
        await stand_in.remove()

    @property
    def ready(self) -> bool:
        """The first screen takes keys: the picker and the form's section on screen are mounted."""
        picker = self.query("#preset-picker")
        return bool(picker) and picker.first().is_mounted and self.form.ready

    def shown(self) -> None:
        self.form.focus()

    @property
    def form(self) -> PresetForm:
        return self.query_one("#preset-form", PresetForm)

    def show_document(self) -> None:
        """Fill the picker and the form from the app's current document (after opening another one)."""
        doc = self.cockpit.doc
        for picker in self.query("#preset-picker").results(Select):  # else it is built from `doc` soon
            picker.set_options([(show_path(p), str(p)) for p in preset_files(doc.path)])
            picker.value = str(doc.path)
        self.form.load(doc)
        self.show_dirty()

    def show_dirty(self) -> None:
        doc = self.cockpit.doc
        self.query_one("#preset-dirty", Label).update("● unsaved" if doc.dirty else "")

    def show_validation(self, message: str | None = None) -> None:
        """The document's validation (`message`, the engine's; "" when valid; None: as last shown), after
        the rows whose value was refused: the document kept their old value, and a row may be in a
        section not on screen."""
        if message is not None:
            self._validation = message
        refused = list(self.form.errors().values())
        valid = "✓ the stored values are valid" if refused else "✓ the preset is valid"
        text = short_paths(self._validation) or valid
        if refused:
            text = "\n".join(["✗ not stored (the preset keeps its old value):", *refused, "", text])
        status = self.query_one("#preset-status", Static)
        status.update(text)
        status.set_class(bool(self._validation or refused), "invalid")

    def on_preset_form_edited(self, event: PresetForm.Edited) -> None:
        self.show_dirty()
        self.cockpit.preset_edited()

    def on_preset_form_errors_changed(self, event: PresetForm.ErrorsChanged) -> None:
        self.show_validation()

    async def action_form_step(self, step: int) -> None:
        await self.form.step_section(step)

    async def action_form_section(self, section: str) -> None:
        await self.form.show_section(section)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "preset-picker":
            return
        event.stop()
        value = event.select.value
        doc = self.cockpit.doc
        if value is Select.NULL or Path(str(value)) == doc.path:
            return
        if not doc.dirty:
            self.cockpit.open_preset(Path(str(value)))
            return

        from cockpit.tui.dialogs import ConfirmDialog  # dialogs are imported when first needed

        def answered(discard: bool | None) -> None:
            if discard:
                self.cockpit.open_preset(Path(str(value)))
            else:
                event.select.value = str(doc.path)

        self.app.push_screen(ConfirmDialog(f"{show_path(doc.path)} has unsaved changes. Discard them and "
                                           f"open {show_path(Path(str(value)))}?", yes="Discard"), answered)

    # -- actions -----------------------------------------------------------------------------------------

    def action_save(self) -> None:
        doc = self.cockpit.doc
        if self.form.errors():
            field, message = next(iter(self.form.errors().items()))
            self.cockpit.show_error(f"not saved: {message}")
            return
        self._save(doc)

    def _save(self, doc, overwrite_changes: bool = False) -> None:
        """Save; a file changed on disk asks first, a failed write is a dialog (the edits stay)."""
        from cockpit.presets import ChangedOnDisk
        from cockpit.tui.dialogs import ConfirmDialog

        try:
            path = doc.save(overwrite_changes=overwrite_changes)
        except ChangedOnDisk:
            def answered(overwrite: bool | None) -> None:
                if overwrite:
                    self._save(doc, overwrite_changes=True)

            self.app.push_screen(ConfirmDialog(f"{show_path(doc.path)} changed on disk since you opened it. "
                                               "Overwrite it with your edits?", yes="Overwrite", no="Cancel"),
                                 answered)
            return
        except CockpitError as exc:
            self.cockpit.show_error(exc.message)
            return
        self.show_dirty()
        self.notify(f"saved {show_path(path)}", timeout=3)

    def action_pick(self) -> None:
        for picker in self.query("#preset-picker"):  # not before it replaces its stand-in
            picker.focus()

    def action_new_from(self) -> None:
        from cockpit.tui.dialogs import PromptDialog

        doc = self.cockpit.doc
        if doc.dirty:
            self.cockpit.show_error(f"{show_path(doc.path)} has unsaved changes: save them first (ctrl+s), "
                                f"so the new preset extends what you see")
            return
        suggestion = doc.path.with_name(f"{doc.path.stem}-custom.toml")

        def create(name: str | None) -> None:
            if not name:
                return
            target = Path(name)
            if target.suffix != ".toml":
                target = target.with_suffix(".toml")
            if not target.is_absolute() and target.parent == Path("."):
                target = doc.path.parent / target
            try:
                child = doc.derive(target)
            except CockpitError as exc:
                self.cockpit.show_error(exc.message)
                return
            self.notify(f"wrote {show_path(child.path)} (extends {show_path(doc.path)})", timeout=4)
            self.cockpit.open_preset(child.path)

        self.app.push_screen(PromptDialog(f"New preset that extends {show_path(doc.path)}: file name",
                                          show_path(suggestion)), create)
