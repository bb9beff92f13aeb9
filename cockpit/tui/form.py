"""The preset form, built from the schema (`core.config.schema()`): one row per key, one preset section
([data], [model], ...) on screen at a time, chosen in a bar above the rows (a click, F8/F9, or `[`/`]`
outside a text box).

Every edit goes through `PresetDocument.set`, so a bad value shows the engine's own one-line message
under its row, the same text the headless CLI prints. Machine type, GPU and GPU count are selects that
offer only what the catalog allows in the chosen region and for the chosen machine.
"""
from __future__ import annotations

from typing import Any, TypeVar

import tomlkit
from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from core.config import FieldSpec, parse_value, schema
from cockpit.catalog import Catalog
from cockpit.errors import CockpitError
from cockpit.presets import PresetDocument
from cockpit.tui.paths import short_paths

CompactT = TypeVar("CompactT", bound="Input | Select[Any] | Checkbox")  # the controls with a compact style
CATALOG_KEYS = ("region", "machine_type", "accelerator_type", "accelerator_count")


def field_id(section: str, key: str) -> str:
    return f"{section}--{key}"


def to_text(value: Any) -> str:
    """A preset value as the user types it: TOML syntax for lists and tables, plain text otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table.as_string()
    if isinstance(value, list):
        return tomlkit.item(value).as_string()
    return repr(value)


def _tooltip(spec: FieldSpec) -> str:
    bits = [spec.help, f"default: {to_text(spec.default) or '(empty)'}"]
    if spec.min is not None:
        bits.append(f"min {spec.min:g}")
    if spec.max is not None:
        bits.append(f"max {spec.max:g}")
    return "; ".join(bits)


class BoolField(Checkbox):
    """A boolean row: the mark, then the value as the preset file writes it ("true" / "false"), so it reads
    at a glance whatever the colours; off shows an empty box. The label gives the control its width
    (a bare compact Checkbox is 3 cells wide but draws 5, and was clipped to "X…")."""

    def __init__(self, value: bool, **kwargs: Any):
        super().__init__(to_text(bool(value)), value=bool(value), **kwargs)
        self.BUTTON_INNER = "X" if self.value else " "
        if self.value:  # the class the first watch_value sets: set now, it does not restyle the row again
            self.add_class("-on", update=False)

    def watch_value(self) -> None:
        super().watch_value()
        self.BUTTON_INNER = "X" if self.value else " "
        self.label = to_text(self.value)


def compact(widget: CompactT) -> CompactT:
    """`widget` in its compact style (no border), set before it is mounted.

    The same as passing `compact=True` to the constructor, minus one restyle of the widget per control:
    that argument toggles the CSS class through a reactive, and a class change restyles the node at once,
    mounted or not. With ~80 controls that was a fifth of the time to the first paint (tui_bench.py)."""
    widget.set_reactive(type(widget).compact, True)
    widget.add_class("-textual-compact", update=False)
    return widget


# The preset's sections ([data], [model], ...) in the schema's order: the form shows one at a time.
FORM_SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(spec.section for spec in schema()))


class SectionBar(Static):
    """The preset's sections on one line (two when narrow): the one on screen highlighted, "!" after one
    with a row whose value was refused. A click on a name shows that section."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.set_reactive(SectionBar.auto_links, False)  # names are click targets drawn in our styles, not links

    def show(self, current: str, flagged: set[str]) -> None:
        bits = []
        for section in FORM_SECTIONS:
            style = "bold $background on $accent" if section == current else "$error" if section in flagged else ""
            mark = "!" if section in flagged else ""
            bits.append(f"[{style} @click=show('{section}')] {section}{mark} [/]")
        self.update(Content.from_markup("".join(bits)))

    def action_show(self, section: str) -> None:
        self.post_message(PresetForm.ShowSection(section))


class FormGroup(Container):
    """One preset section's rows: a two-column grid (key, control). `section` "top" holds the top-level
    description, shown above every section."""

    def __init__(self, form: PresetForm, section: str, specs: list[FieldSpec], *, hidden: bool = False):
        super().__init__(classes="form-group", id=f"group-{section}")
        self.form, self.section, self.specs = form, section, specs
        if hidden:  # mounted out of sight, then swapped in: no frame shows two sections
            self.display = False

    def compose(self) -> ComposeResult:
        yield from self.form.group_rows(self.section, self.specs)

    def on_mount(self) -> None:
        if self.section == "cloud":  # the catalog selects exist now: offer only valid choices
            self.form.sync_catalog(fix=False)


class PresetForm(VerticalScroll):
    """Schema-driven editor of one PresetDocument, one preset section at a time.

    Every widget costs start-up time (the form has ~80 rows), so only the section on screen is built at
    first; each other section is built, from the document as it is then, the first time it is shown.
    Each section is a two-column grid (key, control); an error line is mounted under a row only while
    the row is invalid, and the section bar marks the section with "!".
    """

    class Edited(Message):
        """A value was stored in the document (it is now dirty)."""

        def __init__(self, section: str, key: str, value: Any):
            super().__init__()
            self.section, self.key, self.value = section, key, value

    class ErrorsChanged(Message):
        """A row's error appeared or cleared (`errors()` says which rows are invalid now)."""

    class ShowSection(Message):
        """The user asked for another section (a click in the section bar)."""

        def __init__(self, section: str):
            super().__init__()
            self.section = section

    class Started(Message):
        """The first section is mounted and painted: the cockpit's start-up is over."""

    def __init__(self, catalog: Catalog, doc: PresetDocument | None = None, *, id: str | None = None):
        super().__init__(id=id)
        self.catalog = catalog
        self.doc = doc
        self.specs = {(s.section, s.key): s for s in schema()}
        self.messages: dict[str, str] = {}  # "section--key" -> the engine's message, for invalid rows
        self.current = FORM_SECTIONS[0]  # the section on screen
        self.groups: dict[str, FormGroup] = {}  # the sections built so far
        self._mounting: dict[str, Any] = {}  # section -> its pending mount (first show)

    # -- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        bar = SectionBar(id="form-sections")
        bar.tooltip = "Click a section, or step through them with F9 / F8 (] / [ outside a text box)"
        bar.show(self.current, set())
        yield bar
        yield FormGroup(self, "top", [])
        self.groups[self.current] = FormGroup(self, self.current, self._section_specs(self.current))
        yield self.groups[self.current]

    def on_mount(self) -> None:
        self.call_after_refresh(self.post_message, self.Started())

    def _section_specs(self, section: str) -> list[FieldSpec]:
        return [spec for (s, _), spec in self.specs.items() if s == section]

    async def show_section(self, section: str) -> None:
        """Put `section` on screen, building its rows from the document the first time."""
        if section not in FORM_SECTIONS or section == self.current:
            return
        group = self.groups.get(section)
        if group is None:
            group = self.groups[section] = FormGroup(self, section, self._section_specs(section), hidden=True)
            self._mounting[section] = self.mount(group)
        pending = self._mounting.get(section)
        if pending is not None:  # a click and a key may ask at once: both wait for the one mount
            await pending
            self._mounting.pop(section, None)
        if section == self.current:
            return
        old = self.groups[self.current]
        focus_was_in_old = self.app.focused is not None and old in self.app.focused.ancestors
        old.display, group.display = False, True
        self.current = section
        self.scroll_home(animate=False)
        self._show_bar()
        if focus_was_in_old:  # a hidden row keeps no focus: go on in the same place of the new section
            group.query_one(f"#{field_id(section, group.specs[0].key)}").focus()

    async def step_section(self, step: int) -> None:
        """The next (+1) or previous (-1) section, wrapping around."""
        index = (FORM_SECTIONS.index(self.current) + step) % len(FORM_SECTIONS)
        await self.show_section(FORM_SECTIONS[index])

    async def on_preset_form_show_section(self, event: ShowSection) -> None:
        event.stop()
        await self.show_section(event.section)

    def _show_bar(self) -> None:
        flagged = {fid.split("--", 1)[0] for fid in self.messages}
        self.query_one("#form-sections", SectionBar).show(self.current, flagged)

    def group_rows(self, section: str, specs: list[FieldSpec]) -> ComposeResult:
        """A section's rows ("top": the top-level description)."""
        doc = self.doc
        if section == "top":
            description = str(doc.get(None, "description") or "") if doc else ""
            yield from self._row("top", "description", compact(Input(
                description, id="top--description", tooltip="what this preset is for (top-level key)",
                validate_on=[])))
        for spec in specs:
            value = doc.get(spec.section, spec.key) if doc else spec.default
            yield from self._row(spec.section, spec.key, self._control(spec, value))

    def watch_has_focus(self, has_focus: bool) -> None:
        # Textual restyles a widget and every descendant when its focus changes; no rule styles the rows
        # by the form's focus (only the form's own scrollbar), so restyle the form alone. With ~250
        # widgets in it (every section built), the full restyle was a quarter of the time to the first
        # paint (tui_bench.py); it still grows with each section shown.
        self.app.stylesheet.update_nodes([self], animate=True)

    @property
    def ready(self) -> bool:
        """The section on screen has its rows mounted: they show the document and take keys. (A group
        counts once it is mounted itself, which Textual does after its whole subtree.)"""
        group = self.groups.get(self.current)
        return group is not None and group.is_mounted

    def _row(self, section: str, key: str, control: Any) -> ComposeResult:
        inherited = self.doc is not None and section != "top" and not self.doc.is_set_here(section, key)
        # classes given to the constructor, not added after: adding one restyles the label at once
        label = Label(key, classes="form-key inherited" if inherited else "form-key",
                      id=f"label-{field_id(section, key)}")
        label.tooltip = control.tooltip
        yield label
        yield control

    def _control(self, spec: FieldSpec, value: Any) -> Any:
        fid = field_id(spec.section, spec.key)
        tip = _tooltip(spec)
        if spec.section == "cloud" and spec.key in CATALOG_KEYS:
            return compact(Select([(to_text(value), value)], value=value, id=fid, allow_blank=False, tooltip=tip))
        if spec.type is bool:
            return compact(BoolField(bool(value), id=fid, tooltip=tip))
        if spec.choices:
            return compact(Select([(c, c) for c in spec.choices], value=value, id=fid, allow_blank=False,
                                  tooltip=tip))
        # validate_on=[]: the engine validates (on every edit, through the document); Input's own
        # validation would only toggle its -valid class, restyling each row once more at start-up
        return compact(Input(to_text(value), id=fid, tooltip=tip, validate_on=[]))

    # -- filling from a document -------------------------------------------------------------------------

    def load(self, doc: PresetDocument) -> None:
        """Show `doc`'s effective values (its own, inherited or default); nothing is stored. Sections not
        built yet read `doc` when they are."""
        self.doc = doc
        self.query_one("#top--description", Input).value = str(doc.get(None, "description") or "")
        for fid in list(self.messages):  # only built rows have errors
            section, key = fid.split("--", 1)
            self._show_error(section, key, "")
        for group in self.groups.values():
            for spec in group.specs:
                widget = self.query_one(f"#{field_id(spec.section, spec.key)}")
                value = doc.get(spec.section, spec.key)
                if isinstance(widget, Checkbox):
                    widget.value = bool(value)
                elif isinstance(widget, Input):
                    widget.value = to_text(value)
                elif not (spec.section == "cloud" and spec.key in CATALOG_KEYS):
                    widget.value = value
        self.sync_catalog(fix=False)
        self._mark_inherited()

    def _mark_inherited(self) -> None:
        if self.doc is None:
            return
        for group in self.groups.values():
            for spec in group.specs:
                label = self.query_one(f"#label-{field_id(spec.section, spec.key)}", Label)
                label.set_class(not self.doc.is_set_here(spec.section, spec.key), "inherited")

    def _show_error(self, section: str | None, key: str, message: str) -> None:
        fid = field_id(section or "top", key)
        if self.messages.get(fid, "") == message:
            return  # the common case: a valid row stays valid
        control = self.query_one(f"#{fid}")
        control.set_class(bool(message), "invalid")
        if message and fid in self.messages:
            self.query_one(f"#error-{fid}", Static).update(message)
        elif message:
            self.mount(Static(message, classes="field-error", id=f"error-{fid}", markup=False), after=control)
        else:
            self.query_one(f"#error-{fid}", Static).remove()
        if message:
            self.messages[fid] = message
        else:
            del self.messages[fid]
        self._show_bar()
        self.post_message(self.ErrorsChanged())

    def errors(self) -> dict[str, str]:
        """Rows showing an error, on screen or not: 'section.key' -> message."""
        return {fid.replace("--", "."): message for fid, message in self.messages.items()}

    # -- catalog-driven selects -------------------------------------------------------------------------

    def sync_catalog(self, fix: bool = True) -> None:
        """Offer only valid machine / GPU / count choices for the region and machine.

        With `fix`, a value the new choices exclude is replaced by the first valid one (and stored);
        without it (loading a file), the file's value is kept and shown, and validation reports it.
        """
        doc, cat = self.doc, self.catalog
        if doc is None or "cloud" not in self.groups:  # the selects are built with the section
            return
        region = doc.get("cloud", "region")
        self._offer("region", [(r, r) for r in cat.regions], region, fix)
        try:
            machines = cat.machine_types(region)
        except CockpitError:
            machines = list(cat.machines)
        machine = self._offer("machine_type", [(m, m) for m in machines], doc.get("cloud", "machine_type"), fix)
        try:
            accs = cat.accelerators_for(machine, region)
            cpu_only = cat.machine(machine).cpu_only
        except CockpitError:
            accs, cpu_only = [], True
        options = ([("none (CPU only)", "")] if cpu_only else []) + \
            [(f"{cat.accelerators[a].label} ({a})", a) for a in accs]
        acc = self._offer("accelerator_type", options, doc.get("cloud", "accelerator_type"), fix)
        try:
            counts = cat.allowed_counts(machine, acc)
        except CockpitError:
            counts = ()
        self._offer("accelerator_count", [(str(c), c) for c in counts], doc.get("cloud", "accelerator_count"), fix)

    def _offer(self, key: str, options: list[tuple[str, Any]], current: Any, fix: bool) -> Any:
        select = self.query_one(f"#{field_id('cloud', key)}", Select)
        values = [v for _, v in options]
        if current not in values:
            if fix and values:
                current = values[0]
                self._store("cloud", key, current)
            else:
                options = options + [(f"{current} (not valid here)", current)]
        select.set_options(options)
        select.value = current
        return current

    # -- edits -------------------------------------------------------------------------------------------

    def _store(self, section: str | None, key: str, value: Any) -> bool:
        assert self.doc is not None
        try:
            stored = self.doc.set(section, key, value)
        except CockpitError as exc:
            self._show_error(section, key, short_paths(exc.message))
            return False
        self._show_error(section, key, "")
        if section:
            self.query_one(f"#label-{field_id(section, key)}", Label).remove_class("inherited")
        self.post_message(self.Edited(section or "", key, stored))
        return True

    def _edit(self, widget_id: str | None, value: Any, from_text: bool) -> None:
        if self.doc is None or not widget_id or "--" not in widget_id:
            return
        section, key = widget_id.split("--", 1)
        if section == "top":
            if value != (self.doc.get(None, "description") or ""):
                self._store(None, key, value)
            return
        spec = self.specs[(section, key)]
        if from_text:
            value = parse_value(value, spec)
        current = self.doc.get(section, key)
        if value == current and isinstance(value, bool) == isinstance(current, bool):
            self._show_error(section, key, "")  # back to the stored value: nothing to do
            return
        if self._store(section, key, value) and section == "cloud" and key in CATALOG_KEYS:
            self.sync_catalog(fix=True)

    # The handlers read the widget's current value, not the message's: after `load`, messages queued
    # for the previous document must see the new values and do nothing.
    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._edit(event.input.id, event.input.value, from_text=True)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._edit(event.checkbox.id, event.checkbox.value, from_text=False)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = event.select.value
        if value is Select.NULL:
            return
        self._edit(event.select.id, value, from_text=False)
