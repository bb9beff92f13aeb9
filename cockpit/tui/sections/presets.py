"""Presets: pick a preset file, edit it in a schema-driven form with live validation and a live cost
panel, save it (comments kept by the engine), or derive a new preset that `extends` it."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select, Static

from cockpit.errors import CockpitError
from cockpit.tui.dialogs import ConfirmDialog, PromptDialog
from cockpit.tui.estimate_panel import CostPanel
from cockpit.tui.form import PresetForm
from cockpit.tui.paths import short_paths, show_path
from cockpit.tui.sections import Section


def preset_files(current: Path | None) -> list[Path]:
    found = sorted(p.resolve() for p in Path("presets").glob("*.toml")) if Path("presets").is_dir() else []
    if current is not None and current.resolve() not in found:
        found.append(current.resolve())
    return found


class PresetsSection(Section):
    SECTION_ID = "presets"
    TITLE = "Presets"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="presets.save", tooltip="Write the preset file (comments kept)"),
        Binding("ctrl+n", "new_from", "New from this", id="presets.new_from",
                tooltip="Write a new preset file that extends this one"),
        Binding("ctrl+o", "pick", "Open", id="presets.open", tooltip="Choose another preset file"),
    ]
    PALETTE = [
        ("Save the preset", "Write the file, keeping its comments (ctrl+s)", "save"),
        ("New preset from this one", "Write a file that extends the current preset (ctrl+n)", "new_from"),
        ("Open another preset", "Focus the preset picker (ctrl+o)", "pick"),
    ]

    def compose(self) -> ComposeResult:
        app = self.cockpit
        with Horizontal(id="preset-bar"):
            yield Label("preset", classes="bar-label")
            doc = app.doc
            yield Select([(show_path(p), str(p)) for p in preset_files(doc.path)], value=str(doc.path),
                         id="preset-picker", compact=True, allow_blank=False, tooltip="Preset files in ./presets")
            yield Label("", id="preset-dirty")
        with Horizontal(id="preset-body"):
            yield PresetForm(app.catalog, doc, id="preset-form")
            with Vertical(id="preset-side"):
                yield Label("cost estimate", classes="panel-title")
                yield CostPanel("estimating...", id="preset-cost")
                yield Label("validation", classes="panel-title")
                yield Static("", id="preset-status", markup=False)

    def shown(self) -> None:
        self.form.focus()

    @property
    def form(self) -> PresetForm:
        return self.query_one("#preset-form", PresetForm)

    def show_document(self) -> None:
        """Fill the picker and the form from the app's current document (after opening another one)."""
        doc = self.cockpit.doc
        picker = self.query_one("#preset-picker", Select)
        files = preset_files(doc.path)
        picker.set_options([(show_path(p), str(p)) for p in files])
        picker.value = str(doc.path)
        self.form.load(doc)
        self.show_dirty()

    def show_dirty(self) -> None:
        doc = self.cockpit.doc
        self.query_one("#preset-dirty", Label).update("● unsaved" if doc.dirty else "")

    def show_validation(self, message: str) -> None:
        status = self.query_one("#preset-status", Static)
        status.update(short_paths(message) or "✓ the preset is valid")
        status.set_class(bool(message), "invalid")

    def on_preset_form_edited(self, event: PresetForm.Edited) -> None:
        self.show_dirty()
        self.cockpit.preset_edited()

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
        self.query_one("#preset-picker", Select).focus()

    def action_new_from(self) -> None:
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
