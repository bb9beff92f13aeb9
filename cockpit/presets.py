"""Preset files as the cockpit edits them: read, validate, change one key, save without losing comments.

`PresetDocument` wraps the tomlkit document of ONE file. Values it does not set come from the preset it
`extends` (merged exactly as `core.config.load_preset` does) and then from the schema defaults. Every
check reuses the shared schema in `core.config` (`field_spec`, `check_value`, `config_from_dict`) plus
the catalog's machine/GPU rules, so the headless CLI and the TUI show the same one-line messages.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from core import config as cc
from core.config import Config, ConfigError
from core.storage import write_bytes_atomic
from cockpit.catalog import Catalog, load_catalog
from cockpit.errors import CockpitError

# Keys that look like credentials: a preset is shared and committed, so it must never hold one.
_SECRET_KEY = re.compile(r"secret|passw|token|api_?key|private_?key|credential|access_?key", re.I)
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_BUCKET = re.compile(r"^(gs://)?[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/?$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._/-]*$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The catalog names these keys; check them by name as soon as they are set.
_CATALOG_KEYS = ("machine_type", "accelerator_type", "region")


class ChangedOnDisk(CockpitError):
    """The preset file changed on disk since it was opened (or last saved): saving would lose that change."""


def _file_digest(path: Path) -> str | None:
    """SHA-256 of the file's bytes, None when it does not exist."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _cockpit_error(exc: ConfigError) -> CockpitError:
    return CockpitError(str(exc))


def _plain(value: Any) -> Any:
    """tomlkit items -> plain Python values."""
    return value.unwrap() if hasattr(value, "unwrap") else value


def _check_no_secrets(raw: dict, where: str) -> None:
    def walk(obj: dict, prefix: str) -> None:
        for key, value in obj.items():
            dotted = f"{prefix}{key}"
            if _SECRET_KEY.search(str(key)):
                raise CockpitError(f"{where}: key '{dotted}' looks like a credential; presets must not hold "
                                   f"secrets (the cockpit uses Application Default Credentials)")
            if isinstance(value, dict):
                walk(value, dotted + ".")
    walk(raw, "")


class PresetDocument:
    """One preset file, editable with its comments and key order kept (tomlkit)."""

    def __init__(self, path: str | os.PathLike, doc: tomlkit.TOMLDocument, catalog: Catalog | None = None):
        self.path = Path(path).resolve()
        self.doc = doc
        self._catalog = catalog
        self._dirty = False
        self._parent_cache: tuple[Any, dict] | None = None
        # What the file held when we read or last wrote it: a save checks it has not changed since.
        self._disk_digest: str | None = _file_digest(self.path) if self.path.is_file() else None

    # -- loading -------------------------------------------------------------------------------------

    @classmethod
    def load(cls, ref: str | os.PathLike, catalog: Catalog | None = None) -> "PresetDocument":
        """A preset path or name ('local') -> its document. CockpitError for a missing or invalid file."""
        try:
            path = cc.resolve_preset_path(ref)
        except ConfigError as exc:
            raise _cockpit_error(exc) from None
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CockpitError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise CockpitError(f"{path}: not UTF-8 text (byte {exc.start}); save the preset as UTF-8") from None
        try:
            tomllib.loads(text)  # tomllib's message is the one core.config gives: same text everywhere
        except tomllib.TOMLDecodeError as exc:
            raise CockpitError(f"{path}: not valid TOML: {exc}") from None
        return cls(path, tomlkit.parse(text), catalog)

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog()
        return self._catalog

    @property
    def dirty(self) -> bool:
        """True when the document has changes not yet saved."""
        return self._dirty

    @property
    def extends(self) -> str | None:
        value = _plain(self.doc.get("extends"))
        return value if value is None or isinstance(value, str) else str(value)

    def own(self) -> dict:
        """What this file itself states (plain values), without `extends`."""
        raw = self.doc.unwrap()
        raw.pop("extends", None)
        return raw

    def parent_dict(self) -> dict:
        """The merged values of everything this preset extends ({} when it extends nothing)."""
        parent = _plain(self.doc.get("extends"))
        if parent is None:
            return {}
        if self._parent_cache and self._parent_cache[0] == parent:
            return self._parent_cache[1]
        if not isinstance(parent, str):
            raise CockpitError(f"{self.path}: extends must be a preset name or path string")
        try:
            base, _ = cc.load_preset_dict(parent, (self.path,))
        except cc.ExtendsCycleError as exc:
            raise CockpitError(str(exc)) from None
        except ConfigError as exc:
            raise CockpitError(f"{self.path}: extends '{parent}': {exc}") from None
        self._parent_cache = (parent, base)
        return base

    def effective_dict(self) -> dict:
        """Parent values merged with this file's, as core.config merges them (no schema defaults)."""
        return cc.deep_merge(self.parent_dict(), self.own())

    # -- reading and changing one key ----------------------------------------------------------------

    def get(self, section: str | None, key: str) -> Any:
        """The effective value: this file's, else inherited through `extends`, else the schema default.

        `section` None (or "") addresses the top-level `description`.
        """
        if not section:
            if key != "description":
                raise CockpitError(f"{self.path}: unknown top-level key '{key}' (only 'description')")
            return self.effective_dict().get("description", "")
        spec = self._spec(section, key)
        values = self.effective_dict().get(section, {})
        # A copy: the schema is built once and shared, so a caller changing a list default must not change it.
        return values[key] if isinstance(values, dict) and key in values else copy.deepcopy(spec.default)

    def is_set_here(self, section: str, key: str) -> bool:
        """Whether this file states the key itself (False: inherited or default)."""
        table = self.doc.get(section)
        return table is not None and hasattr(table, "get") and key in table

    def set(self, section: str | None, key: str, value: Any) -> Any:
        """Validate and set one key in this file; returns the stored (type-coerced) value.

        Raises CockpitError with the one-line message the CLI prints. Machine type, accelerator and
        region are checked against the catalog by name here; their combination is checked by
        `validate()`, because a user changing machine and GPU passes through invalid pairs.
        """
        if not section:
            if key != "description" or not isinstance(value, str):
                raise CockpitError(f"{self.path}: only 'description' (a string) can be set at the top level")
            return self._store(None, key, value)
        spec = self._spec(section, key)
        try:
            value = cc.check_value(spec, value, str(self.path))
        except ConfigError as exc:
            raise _cockpit_error(exc) from None
        if section == "cloud" and key in _CATALOG_KEYS:
            where = f"{self.path}: cloud.{key}"
            if key == "machine_type":
                self.catalog.machine(value, where)
            elif key == "accelerator_type" and value:
                self.catalog.accelerator(value, where)
            elif key == "region":
                self.catalog.check_region(value, where)
        return self._store(section, key, value)

    def _spec(self, section: str, key: str) -> cc.FieldSpec:
        if section not in cc.SECTIONS:
            raise CockpitError(f"{self.path}: unknown section '{section}'"
                               f"{cc._did_you_mean(section, cc.SECTIONS)}")
        try:
            return cc.field_spec(section, key)
        except ConfigError as exc:
            raise CockpitError(f"{self.path}: {exc}") from None

    def _store(self, section: str | None, key: str, value: Any) -> Any:
        if isinstance(value, dict):
            item = tomlkit.inline_table()
            item.update(value)
            value_item: Any = item
        else:
            value_item = value
        if section is None:
            table = self.doc
        else:
            if section not in self.doc:
                self.doc.add(tomlkit.nl())
                self.doc.add(section, tomlkit.table())
            table = self.doc[section]
        if key in table and _plain(table[key]) == value:
            return value
        table[key] = value_item  # tomlkit keeps the key's place and its trailing comment
        self._dirty = True
        return value

    # -- whole-file checks ---------------------------------------------------------------------------

    def validate(self, overrides: list[str] | None = None, submitting: bool = False) -> Config:
        """The full effective Config (inheritance, defaults, `--set` overrides) with the cloud checks.

        `submitting=True` also requires what a Vertex AI submit needs (project, bucket).
        """
        where = str(self.path)
        merged = self.effective_dict()
        _check_no_secrets(merged, where)
        try:
            parsed = [cc.parse_override(o) for o in overrides or []]
            cfg = cc.config_from_dict(cc.apply_overrides(merged, parsed), where=where)
        except ConfigError as exc:
            raise _cockpit_error(exc) from None
        validate_cloud(cfg, self.catalog, submitting=submitting)
        return cfg

    # -- writing -------------------------------------------------------------------------------------

    def changed_on_disk(self) -> bool:
        """True when the file no longer holds what this document read or last wrote (another editor,
        a git checkout): saving would silently throw that change away."""
        return _file_digest(self.path) != self._disk_digest

    def save(self, path: str | os.PathLike | None = None, *, overwrite_changes: bool = False) -> Path:
        """Write the document (comments and key order kept); `path` saves under a new name.

        Raises ChangedOnDisk when the file changed since it was opened (unless `overwrite_changes`), and
        CockpitError naming the file when it cannot be written (disk full, read-only); either way the
        document keeps its edits and stays dirty, so nothing is lost.
        """
        target = Path(path).resolve() if path is not None else self.path
        if target == self.path and not overwrite_changes and self.changed_on_disk():
            raise ChangedOnDisk(f"{self.path}: changed on disk since it was opened; saving would overwrite "
                                "that change")
        if path is not None:
            self._rebase_extends(target)
        data = tomlkit.dumps(self.doc).encode("utf-8")
        try:
            write_bytes_atomic(target, data)
        except OSError as exc:
            raise CockpitError(f"{target}: not saved ({exc.strerror or type(exc).__name__}); your edits "
                               "are kept") from None
        self.path = target
        self._disk_digest = hashlib.sha256(data).hexdigest()
        self._dirty = False
        return self.path

    def new_from(self, path: str | os.PathLike, overwrite: bool = False) -> "PresetDocument":
        """A full copy of this preset (comments included) at `path`, written now; this one is untouched."""
        target = _new_path(path, overwrite)
        copy = PresetDocument(self.path, tomlkit.parse(tomlkit.dumps(self.doc)), self._catalog)
        copy.save(target)
        return copy

    def derive(self, path: str | os.PathLike, changes: dict[tuple[str, str], Any] | None = None,
               description: str | None = None, overwrite: bool = False) -> "PresetDocument":
        """A new preset at `path` that `extends` this one and states only `changes`, written now.

        `changes` maps (section, key) to a value; each is validated like `set`.
        """
        target = _new_path(path, overwrite)
        doc = tomlkit.document()
        doc.add(tomlkit.comment(f"Derived from {self.path.name}: only what differs from it is stated here."))
        doc["extends"] = _relative_ref(self.path, target.parent)
        doc["description"] = description or f"Derived from {self.path.stem}"
        child = PresetDocument(target, doc, self._catalog)
        for (section, key), value in (changes or {}).items():
            child.set(section, key, value)
        child.save()
        return child

    def _rebase_extends(self, target: Path) -> None:
        """Keep a relative `extends` pointing at the same parent when the file moves elsewhere."""
        parent = self.extends
        if parent is None or target.parent == self.path.parent:
            return
        try:
            parent_path = cc.resolve_preset_path(parent, self.path.parent)
        except ConfigError:
            return  # a broken extends stays as written; validate() reports it
        try:
            same = cc.resolve_preset_path(parent, target.parent) == parent_path
        except ConfigError:
            same = False
        if not same:
            self.doc["extends"] = _relative_ref(parent_path, target.parent)


def _new_path(path: str | os.PathLike, overwrite: bool) -> Path:
    target = Path(path).resolve()
    if target.exists() and not overwrite:
        raise CockpitError(f"{target}: already exists; choose another name")
    return target


def _relative_ref(parent: Path, from_dir: Path) -> str:
    return Path(os.path.relpath(parent, from_dir)).as_posix()


def validate_preset(ref: str | os.PathLike, overrides: list[str] | None = None,
                    catalog: Catalog | None = None, submitting: bool = False) -> Config:
    """Load a preset (path or name), apply overrides, run every check; CockpitError on the first problem."""
    return PresetDocument.load(ref, catalog).validate(overrides, submitting=submitting)


def validate_cloud(cfg: Config, catalog: Catalog | None = None, submitting: bool = False) -> None:
    """The [cloud] checks the schema alone cannot make: catalog combination (machine, GPU, count,
    region), name formats, and, when `submitting`, that project and bucket are set."""
    catalog = catalog or load_catalog()
    c = cfg.cloud
    where = cfg.source or "preset"
    catalog.validate_combo(c.machine_type, c.accelerator_type, c.accelerator_count, c.region, where)
    if submitting:
        for key, hint in (("project", "your Google Cloud project id"), ("bucket", "gs://your-bucket")):
            if not getattr(c, key):
                raise CockpitError(f"{where}: cloud.{key} is empty; set it to {hint} in the preset or "
                                   f"with --set cloud.{key}=...")
    checks = ((c.project, _PROJECT_ID, "project", "a project id: 6-30 lowercase letters, digits or '-'"),
              (c.bucket, _BUCKET, "bucket", "a bucket name or gs://name"),
              (c.image, _IMAGE, "image", "an Artifact Registry REPOSITORY/IMAGE name, e.g. psa/psa-trainer"),
              (c.service_account, _EMAIL, "service_account", "a service account email"))
    for value, pattern, key, expected in checks:
        if value and not pattern.match(value):
            raise CockpitError(f"{where}: cloud.{key} = {value!r} must be {expected}")
    check_labels(c.labels, where)


def check_labels(labels: dict[str, str], where: str = "preset") -> None:
    """Vertex AI label rules, the one place they are checked (validation and the job builder call it)."""
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise CockpitError(f"{where}: cloud.labels {key} = {value!r}: label keys and values must be "
                               f"lowercase letters, digits, '_' or '-' (at most 63; keys start with a letter)")
