"""`splits.json` (docs/design.md §1): typed card records and the reader that checks the whole file first.

The trainer calls `load_splits`; it raises one `SplitsError` whose one-line message names the file and
every kind of problem found (with counts and the first few offenders), before any training starts.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterable

from core import storage

SPLIT_NAMES = ("train", "val", "test")
NUM_GRADES = 10
# The four things a PSA grader looks at (docs/design.md §2), in the order of CardRecord.subgrades.
CRITERIA = ("centering", "corners", "edges", "surface")


class SplitsError(ValueError):
    """splits.json is malformed or points at missing data."""


@dataclass(frozen=True)
class CardRecord:
    id: str
    front: str  # resolved path: absolute local path or gs://
    back: str
    grade: int  # 1..10
    edge: float | None = None  # edge/corner damage in [0, 1]
    centering: tuple[float, float, float, float] | None = None  # front lr, front tb, back lr, back tb
    subgrades: tuple[int | None, ...] | None = None  # 1..10 per CRITERIA entry, None where not labelled


@dataclass
class Splits:
    path: str
    train: list[CardRecord] = field(default_factory=list)
    val: list[CardRecord] = field(default_factory=list)
    test: list[CardRecord] = field(default_factory=list)

    def split(self, name: str) -> list[CardRecord]:
        if name not in SPLIT_NAMES:
            raise SplitsError(f"{self.path}: unknown split '{name}' (expected one of {', '.join(SPLIT_NAMES)})")
        return getattr(self, name)


def resolve_image_path(splits_path: str, image: str) -> str:
    """Relative image paths are relative to the directory holding splits.json (local or gs://)."""
    if storage.is_gcs(image) or image.startswith("/"):
        return image
    if storage.is_gcs(splits_path):
        parent = str(PurePosixPath(splits_path[len("gs://"):]).parent)
        return "gs://" + str(PurePosixPath(parent, image))
    from pathlib import Path

    return str((Path(splits_path).resolve().parent / image))


def _first(items: list, n: int = 3) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def parse_record(raw: dict, splits_path: str) -> tuple[CardRecord | None, list[str]]:
    """One record -> (CardRecord, []) or (None, [problem, ...])."""
    problems = []
    if not isinstance(raw, dict):
        return None, ["a record is not an object"]
    rid = raw.get("id")
    label = f"record {rid!r}" if rid is not None else "a record without id"
    for key in ("id", "front", "back", "grade"):
        if key not in raw:
            problems.append(f"{label}: missing key '{key}'")
    if problems:
        return None, problems
    grade = raw["grade"]
    if isinstance(grade, bool) or not isinstance(grade, (int, float)) or not math.isfinite(grade) \
            or grade != int(grade) or not 1 <= grade <= NUM_GRADES:  # NaN/inf: int() would raise
        return None, [f"{label}: grade {grade!r} must be an integer 1..10"]
    edge = raw.get("edge")
    if edge is not None and (not isinstance(edge, (int, float)) or not 0.0 <= edge <= 1.0 or math.isnan(edge)):
        return None, [f"{label}: edge {edge!r} must be a number in [0, 1]"]
    centering = raw.get("centering")
    cvals = None
    if centering is not None:
        try:
            cvals = tuple(float(v) for side in ("front", "back") for v in centering[side])
            if len(cvals) != 4 or not all(0.0 < v < 1.0 for v in cvals):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            return None, [f"{label}: centering must be {{\"front\": [lr, tb], \"back\": [lr, tb]}} "
                          f"with shares in (0, 1)"]
    subgrades, problem = _parse_subgrades(raw.get("subgrades"), label)
    if problem:
        return None, [problem]
    return CardRecord(
        id=str(rid), front=resolve_image_path(splits_path, str(raw["front"])),
        back=resolve_image_path(splits_path, str(raw["back"])), grade=int(grade),
        edge=None if edge is None else float(edge), centering=cvals, subgrades=subgrades,
    ), []


def _is_grade(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and v == int(v) and 1 <= v <= NUM_GRADES


def _parse_subgrades(raw, label: str) -> tuple[tuple[int | None, ...] | None, str]:
    """Optional `subgrades`: {"centering": 9, "corners": 10, ...}, any subset of CRITERIA, integers 1..10."""
    if raw is None:
        return None, ""
    expected = f"subgrades must be an object with integer grades 1..10 for any of {', '.join(CRITERIA)}"
    if not isinstance(raw, dict) or any(k not in CRITERIA for k in raw) or \
            any(v is not None and not _is_grade(v) for v in raw.values()):
        return None, f"{label}: {expected} (got {json.dumps(raw)[:80]})"
    values = tuple(None if raw.get(c) is None else int(raw[c]) for c in CRITERIA)
    return (values if any(v is not None for v in values) else None), ""


def load_splits(path: str, check_images: bool = True, required: Iterable[str] = SPLIT_NAMES) -> Splits:
    """Read and validate the whole file; raise SplitsError listing every kind of problem."""
    try:
        data = json.loads(storage.read_text(path))
    except storage.StorageError as exc:
        raise SplitsError(str(exc)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SplitsError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SplitsError(f"{path}: expected an object with train/val/test lists")
    splits = Splits(path=str(path))
    problems: list[str] = []
    seen: dict[str, str] = {}
    duplicates = []
    for name in SPLIT_NAMES:
        raw_list = data.get(name)
        if raw_list is None:
            if name in required:
                problems.append(f"missing split '{name}'")
            continue
        if not isinstance(raw_list, list):
            problems.append(f"split '{name}' must be a list")
            continue
        for raw in raw_list:
            rec, errs = parse_record(raw, str(path))
            problems.extend(errs)
            if rec is None:
                continue
            if rec.id in seen:
                duplicates.append(f"{rec.id} ({seen[rec.id]}/{name})")
            seen[rec.id] = name
            getattr(splits, name).append(rec)
        if name in required and not getattr(splits, name) and not problems:
            problems.append(f"split '{name}' is empty")
    if duplicates:
        problems.append(f"{len(duplicates)} duplicate ids: {_first(duplicates)}")
    if problems:
        raise SplitsError(f"{path}: {len(problems)} problem(s): {_first(problems)}")
    if check_images:
        missing = [p for name in SPLIT_NAMES for r in getattr(splits, name) for p in (r.front, r.back)
                   if not storage.exists(p)]
        if missing:
            raise SplitsError(f"{path}: {len(missing)} missing images: {_first(missing)}")
    return splits


def require_centering_labels(splits: Splits) -> None:
    """Refuse a measuring grader (`model.measure_centering`) on cards none of which has `centering`: its
    border reader learns only from those labels, and an untrained one would read every card as 50/50."""
    if splits.train and not any(r.centering is not None for r in splits.train):
        raise SplitsError(f"{splits.path}: model.measure_centering = true needs `centering` labels, and none of "
                          f"the {len(splits.train)} training cards has one; add them (docs/design.md §1) or set "
                          f"model.measure_centering = false")
