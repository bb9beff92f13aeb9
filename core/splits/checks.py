"""The checks on a splits.json: each one counts its offenders and keeps the first few to show.

None raises here: the caller decides (the CLI exits 1 and `build` leaves splits.json unwritten when any
check fails, unless --allow-problems). Images are probed once (core.image_checks) and shared by every
image check.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from core.image_checks import ASPECT_TOLERANCE, CARD_ASPECT, MIN_SIDE, ImageInfo
from core.records import NUM_GRADES, SPLIT_NAMES, parse_record
from core.splits.raw import SIDES, RawRecord, RawSplits

MAX_EXAMPLES = 5


@dataclass
class Check:
    name: str
    title: str  # what is wrong when count > 0
    offenders: list[str] = field(default_factory=list)  # every one, named: the report lists them all

    @property
    def count(self) -> int:
        return len(self.offenders)

    @property
    def examples(self) -> list[str]:
        """The first few, for the text output."""
        return self.offenders[:MAX_EXAMPLES]

    def add(self, offender: str) -> None:
        self.offenders.append(offender)

    def as_dict(self) -> dict:
        return {"title": self.title, "count": self.count, "examples": self.examples,
                "offenders": self.offenders}


def image_refs(data: RawSplits) -> list[tuple[RawRecord, str, str]]:
    """(record, side, resolved path) for every side a record names."""
    refs = []
    for rec in data.records:
        for side in SIDES:
            path = data.image(rec, side)
            if path is not None:
                refs.append((rec, side, path))
    return refs


def check_structure(data: RawSplits) -> Check:
    check = Check("structure", "file or record structure the trainer cannot read")
    for problem in data.structure:
        check.add(problem)
    for rec in data.records:
        missing = [k for k in ("id", "grade") if k not in rec.raw]
        if missing:
            check.add(f"{rec.label}: missing key {', '.join(repr(k) for k in missing)}")
    return check


def check_one_side(data: RawSplits) -> Check:
    check = Check("one_side", "records with only one side (front and back are both needed)")
    for rec in data.records:
        absent = [s for s in SIDES if rec.side(s) is None]
        if absent:
            check.add(f"{rec.label}: no {' and no '.join(absent)}")
    return check


def check_grades(data: RawSplits) -> Check:
    check = Check("grades", f"grades that are not integers in 1..{NUM_GRADES}")
    for rec in data.records:
        if "grade" in rec.raw and rec.grade is None:
            check.add(f"{rec.label}: {rec.raw['grade']!r}")
    return check


def check_aux_labels(data: RawSplits) -> Check:
    check = Check("aux_labels", "edge or centering labels out of range or malformed")
    for rec in data.records:
        # parse_record is the trainer's own rule; give it placeholders for the keys other checks cover.
        probe = {**rec.raw, "id": rec.label, "front": "f", "back": "b", "grade": 1}
        _, errors = parse_record(probe, data.path)
        for err in errors:
            check.add(err.removeprefix("record "))
    return check


def check_duplicate_ids(data: RawSplits) -> Check:
    check = Check("duplicate_ids", "ids used by more than one record")
    where: dict[str, list[str]] = defaultdict(list)
    for rec in data.records:
        if "id" in rec.raw:
            where[str(rec.raw["id"])].append(rec.split)
    for rid, splits in where.items():
        if len(splits) > 1:
            check.add(f"{rid} ({', '.join(splits)})")
    return check


def check_card_in_two_splits(data: RawSplits) -> Check:
    check = Check("card_in_two_splits", "cards (id or group) in more than one split: test scores would leak")
    where: dict[str, set[str]] = defaultdict(set)
    for rec in data.records:
        if rec.group is not None:
            where[rec.group].add(rec.split)
    for group, splits in where.items():
        if len(splits) > 1:
            check.add(f"{group} ({', '.join(s for s in SPLIT_NAMES if s in splits)})")
    return check


def check_missing_images(refs, probes: dict[str, ImageInfo]) -> Check:
    check = Check("missing_images", "images that do not exist")
    for rec, side, path in refs:
        if probes[path].missing:
            check.add(f"{rec.label} {side}: {path}")
    return check


def check_unreadable_images(refs, probes: dict[str, ImageInfo]) -> Check:
    check = Check("unreadable_images", "images that exist but cannot be read or decoded")
    for rec, side, path in refs:
        if probes[path].error:
            check.add(f"{rec.label} {side}: {path} ({probes[path].error})")
    return check


def check_shared_images(refs, probes: dict[str, ImageInfo]) -> Check:
    check = Check("shared_images", "identical image files (same content hash) used by more than one record "
                                   "or as both sides of one")
    users: dict[str, list[tuple[RawRecord, str]]] = defaultdict(list)
    for rec, side, path in refs:
        if probes[path].sha256:
            users[probes[path].sha256].append((rec, side))
    for digest, uses in users.items():
        if len(uses) > 1:
            check.add(" = ".join(f"{rec.label} {side}" for rec, side in uses) + f" (sha256 {digest[:10]})")
    return check


def check_tiny_or_blank(refs, probes: dict[str, ImageInfo]) -> Check:
    check = Check("tiny_or_blank_images", f"images under {MIN_SIDE} px on the short side or nearly uniform")
    for rec, side, path in refs:
        info = probes[path]
        if info.tiny:
            check.add(f"{rec.label} {side}: {info.width}x{info.height} px")
        elif info.blank:
            check.add(f"{rec.label} {side}: nearly uniform (grey std {info.grey_std:.1f})")
    return check


def check_aspect(refs, probes: dict[str, ImageInfo]) -> Check:
    low, high = CARD_ASPECT / ASPECT_TOLERANCE, CARD_ASPECT * ASPECT_TOLERANCE
    check = Check("aspect_ratio", f"images not card-shaped (long/short side outside {low:.2f}..{high:.2f}; "
                                  f"a card is 7:5, portrait or landscape)")
    for rec, side, path in refs:
        info = probes[path]
        if info.off_aspect:
            check.add(f"{rec.label} {side}: {info.width}x{info.height} ({info.aspect:.2f}:1)")
    return check


def held_out_fractions(data: RawSplits) -> list[float]:
    """Shares of val and test in the file, skipping empty ones."""
    total = len(data.records)
    return [len(data.in_split(s)) / total for s in ("val", "test") if total and data.in_split(s)]


def min_examples(fractions: list[float]) -> int:
    """Cards a grade needs so the smallest held-out split expects at least one (and never under 3)."""
    fractions = [f for f in fractions if f > 0]
    return max(3, math.ceil(1 / min(fractions) - 1e-9)) if fractions else 3


def check_rare_grades(data: RawSplits, fractions: list[float] | None = None) -> Check:
    fractions = held_out_fractions(data) if fractions is None else fractions
    need = min_examples(fractions)
    shown = "/".join(f"{f:.0%}" for f in fractions) or "none"
    check = Check("rare_grades", f"grades with fewer than {need} cards: the smallest held-out split "
                                 f"(val/test {shown}) would get none or one")
    counts: dict[int, int] = defaultdict(int)
    for rec in data.records:
        if rec.grade is not None:
            counts[rec.grade] += 1
    for grade in sorted(counts):
        if counts[grade] < need:
            check.add(f"grade {grade}: {counts[grade]} card{'s' if counts[grade] != 1 else ''}")
    return check


def run_checks(data: RawSplits, probes: dict[str, ImageInfo],
               fractions: list[float] | None = None) -> list[Check]:
    refs = image_refs(data)
    return [
        check_structure(data), check_one_side(data), check_grades(data), check_aux_labels(data),
        check_duplicate_ids(data), check_card_in_two_splits(data),
        check_missing_images(refs, probes), check_unreadable_images(refs, probes),
        check_shared_images(refs, probes), check_tiny_or_blank(refs, probes), check_aspect(refs, probes),
        check_rare_grades(data, fractions),
    ]
