"""Read splits.json leniently: keep every record as written, so a check can report what the trainer's
strict reader (core.records.load_splits) would reject instead of stopping at the first problem."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from core import storage
from core.records import NUM_GRADES, SPLIT_NAMES, resolve_image_path

SIDES = ("front", "back")


class SplitsInputError(ValueError):
    """Input the tool cannot work with at all (unreadable file, bad CSV, bad option); one line."""


@dataclass(frozen=True)
class RawRecord:
    split: str
    index: int
    raw: dict

    @property
    def label(self) -> str:
        rid = self.raw.get("id")
        return str(rid) if rid is not None else f"{self.split}[{self.index}]"

    @property
    def group(self) -> str | None:
        """The physical card: `group` when the builder split copies of one id apart, else the id."""
        value = self.raw.get("group", self.raw.get("id"))
        return None if value is None else str(value)

    def side(self, name: str) -> str | None:
        value = self.raw.get(name)
        return value if isinstance(value, str) and value.strip() else None

    @property
    def grade(self) -> int | None:
        """The grade when it is one the trainer accepts (integer 1..10), else None."""
        return valid_grade(self.raw.get("grade"))


def valid_grade(grade) -> int | None:
    # Same rule as core.records.parse_record: a JSON number with an integer value in 1..10.
    if isinstance(grade, bool) or not isinstance(grade, (int, float)) or not math.isfinite(grade):
        return None
    if grade != int(grade) or not 1 <= grade <= NUM_GRADES:
        return None
    return int(grade)


@dataclass
class RawSplits:
    path: str
    records: list[RawRecord] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)  # file-level problems, one string each

    def in_split(self, name: str) -> list[RawRecord]:
        return [r for r in self.records if r.split == name]

    def image(self, rec: RawRecord, side: str) -> str | None:
        value = rec.side(side)
        return None if value is None else resolve_image_path(self.path, value)


def load_raw(path: str) -> RawSplits:
    try:
        text = storage.read_text(path)
    except storage.StorageError as exc:
        raise SplitsInputError(str(exc)) from None
    except UnicodeDecodeError:
        raise SplitsInputError(f"{path}: not a text file (expected splits.json)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SplitsInputError(f"{path}: not valid JSON: {exc}") from None
    return raw_from_data(path, data)


def raw_from_data(path: str, data) -> RawSplits:
    """The lenient view of splits.json content already in memory; `path` is where the file is (or is
    about to be) written, which is what relative image paths resolve against."""
    if not isinstance(data, dict):
        raise SplitsInputError(f"{path}: expected an object with train/val/test lists, got {type(data).__name__}")
    out = RawSplits(path=str(path))
    for name in SPLIT_NAMES:
        items = data.get(name)
        if items is None:
            out.structure.append(f"missing split '{name}'")
            continue
        if not isinstance(items, list):
            out.structure.append(f"split '{name}' is a {type(items).__name__}, not a list")
            continue
        if not items:
            out.structure.append(f"split '{name}' is empty")  # the trainer needs all three
        for i, raw in enumerate(items):
            if isinstance(raw, dict):
                out.records.append(RawRecord(name, i, raw))
            else:
                out.structure.append(f"{name}[{i}] is not an object")
    return out
