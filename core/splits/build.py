"""Turn a user's rows into splits.json: a train/val/test split stratified by grade, grouped by card id
(both sides and every copy of one id land in the same split, so no card leaks into the test scores)."""
from __future__ import annotations

import json
import math
import os
import random
from collections import Counter, defaultdict
from pathlib import Path

from core import storage
from core.records import SPLIT_NAMES
from core.splits.checks import Check
from core.splits.raw import SplitsInputError, raw_from_data, valid_grade
from core.splits.report import report_from
from core.splits.sources import SOURCE_KEY, Columns, read_csv, read_folders

LAYOUTS = ("csv", "folders")


def stratum_sizes(n: int, val: float, test: float) -> tuple[int, int]:
    """(val, test) card counts for a grade with n cards. With 3 or more, each requested split gets at
    least one (so every grade is scored) and train keeps at least one."""
    n_val, n_test = math.floor(n * val + 0.5), math.floor(n * test + 0.5)
    if n >= 3:
        n_val = max(n_val, 1 if val > 0 else 0)
        n_test = max(n_test, 1 if test > 0 else 0)
    while n_val + n_test > max(0, n - 1):
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def _group_stratum(rows: list[dict]) -> str:
    """A card's stratum: its most common valid grade (copies may be graded differently)."""
    grades = Counter(g for g in (valid_grade(r.get("grade")) for r in rows) if g is not None)
    return str(grades.most_common(1)[0][0]) if grades else "invalid"


def assign_splits(rows: list[dict], val: float, test: float, seed: int) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row["id"])].append(row)
    strata: dict[str, list[str]] = defaultdict(list)
    for gid, members in groups.items():
        strata[_group_stratum(members)].append(gid)
    rng = random.Random(seed)
    chosen: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for key in sorted(strata):  # sorted, so the same seed gives the same split whatever the row order
        ids = sorted(strata[key])
        rng.shuffle(ids)
        n_val, n_test = stratum_sizes(len(ids), val, test)
        chosen["val"] += ids[:n_val]
        chosen["test"] += ids[n_val:n_val + n_test]
        chosen["train"] += ids[n_val + n_test:]
    taken = set(groups)
    out: dict[str, list[dict]] = {}
    for name in SPLIT_NAMES:
        out[name] = [rec for gid in sorted(chosen[name]) for rec in _records(gid, groups[gid], taken)]
    return out


KEY_ORDER = ("id", "group", "front", "back", "grade", "edge", "centering")


def _ordered(rec: dict) -> dict:
    """Keys in docs/design.md §1 order, so the file reads the same however the row was assembled."""
    return {k: rec[k] for k in KEY_ORDER if k in rec}


def _records(gid: str, rows: list[dict], taken: set[str]) -> list[dict]:
    """Copies of one id get distinct ids (the trainer rejects duplicates) and keep the card in `group`."""
    if len(rows) == 1:
        return [_ordered(rows[0])]
    out = []
    for k, row in enumerate(rows):
        rid = gid
        if k > 0:
            n = k + 1
            while f"{gid}#{n}" in taken:
                n += 1
            rid = f"{gid}#{n}"
            taken.add(rid)
        out.append(_ordered({**row, "id": rid, "group": gid}))
    return out


def relative_to(path: str, out_dir: str) -> str:
    """An image path as written into splits.json: relative to the file's directory when both are local
    and share a directory above the root (or both sit in one gs:// prefix), else absolute."""
    if storage.is_gcs(path) or storage.is_gcs(out_dir):
        prefix = out_dir.rstrip("/") + "/"
        return path[len(prefix):] if path.startswith(prefix) else path
    target, base = Path(path).resolve(), Path(out_dir).resolve()
    if os.path.commonpath([target, base]) == target.anchor:
        return str(target)
    return os.path.relpath(target, base)


def validate_options(layout: str, csv_path: str | None, images: str | None, val: float, test: float) -> None:
    if layout not in LAYOUTS:
        raise SplitsInputError(f"unknown layout '{layout}' (expected one of: {', '.join(LAYOUTS)})")
    if layout == "csv" and not csv_path:
        raise SplitsInputError("layout csv needs --csv LABELS.csv (or use --layout folders)")
    if layout == "folders" and not images:
        raise SplitsInputError("layout folders needs --images DIR")
    if layout == "folders" and csv_path:
        raise SplitsInputError("--csv is only read with --layout csv")
    for name, value in (("val", val), ("test", test)):
        if not 0.0 <= value < 1.0 or value != value:
            raise SplitsInputError(f"--{name} {value} must be a fraction in [0, 1)")
    if val + test >= 1.0:
        raise SplitsInputError(f"--val {val} + --test {test} must leave something for train (sum < 1)")
    if images and not storage.is_gcs(images) and not Path(images).is_dir():
        raise SplitsInputError(f"{images}: images directory not found")


def check_repeated_ids(rows: list[dict], splits: dict[str, list[dict]]) -> Check:
    """Input rows sharing a card id: the same card scanned twice, or a typo. Both are kept (as id, id#2,
    ... in one split, grouped), and each is named with where it came from and what it became."""
    check = Check("repeated_input_ids", "card ids on more than one input row (the same card scanned twice, "
                                        "or a typo): each row kept as its own record, renamed id#2, id#3..., "
                                        "all in one split")
    sources: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        sources[str(row["id"])].append(row.get(SOURCE_KEY, "?"))
    became: dict[str, list[tuple[str, str]]] = defaultdict(list)  # group -> [(new id, split)] in row order
    for name in SPLIT_NAMES:
        for rec in splits[name]:
            if "group" in rec:
                became[rec["group"]].append((rec["id"], name))
    for gid, where in sources.items():
        if len(where) > 1:
            ids = ", ".join(rid for rid, _ in became[gid])
            check.add(f"{gid}: {', '.join(where)} -> kept as {ids} in {became[gid][0][1]} (group {gid})")
    return check


def build_splits(out: str, *, csv_path: str | None = None, images: str | None = None, layout: str = "csv",
                 columns: Columns = Columns(), require: tuple[str, ...] = (), val: float = 0.1,
                 test: float = 0.1, seed: int = 0, allow_problems: bool = False) -> dict:
    """Read the labels, split them, check the result and write splits.json at `out` (local or gs://)
    when no check fails, or anyway with `allow_problems`.

    Returns {"splits": out, "rows": n, "records": {split: n}, "ignored": [files the folder layout skipped],
    "written": bool, "report": the checks and stats (report.splits_report's shape, plus "written")}.
    Raises SplitsInputError for input it cannot use (missing column, unknown layout, bad fractions...).
    """
    validate_options(layout, csv_path, images, val, test)
    ignored: list[str] = []
    if layout == "csv":
        rows = read_csv(csv_path, images, columns, require)
    else:
        rows, ignored = read_folders(images)
    if not rows:
        raise SplitsInputError(f"{csv_path}: no data rows under the header")
    out_dir = out.rsplit("/", 1)[0] if storage.is_gcs(out) else str(Path(out).resolve().parent)
    for row in rows:
        for side in ("front", "back"):
            if side in row:
                row[side] = relative_to(row[side], out_dir)
    splits = assign_splits(rows, val, test, seed)
    content = {"version": 1, **splits}
    # Checked before writing, against where the file will be: relative image paths resolve from its
    # folder the way the trainer resolves them, and "mine/../scans" needs "mine" to exist. The report is
    # written there too, so the folder is made either way.
    if not storage.is_gcs(out):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    report = report_from(raw_from_data(out, content), [f for f in (val, test) if f > 0],
                         extra=(check_repeated_ids(rows, splits),))
    report["written"] = report["problems"] == 0 or allow_problems
    if report["written"]:
        storage.write_text_atomic(out, json.dumps(content, indent=1) + "\n")
    return {"splits": out, "rows": len(rows), "records": {k: len(v) for k, v in splits.items()},
            "ignored": ignored, "written": report["written"], "report": report}
