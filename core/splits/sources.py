"""Where a user's labels come from: a CSV of id/front/back/grade rows, or a folder tree
`<images>/<grade>/<id>_front.jpg` + `<id>_back.jpg`. Both give the same row dicts, with image paths
made absolute (local) or gs://, ready for the splitter. Values are kept as written when they do not
parse, so the checks can name them instead of the builder dropping cards silently."""
from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from core import storage
from core.splits.raw import SplitsInputError

IMAGE_NAME = re.compile(r"^(?P<id>.+)_(?P<side>front|back)\.(?:jpe?g|png|webp|bmp|tiff?)$", re.IGNORECASE)
# Where a row came from ("labels.csv line 7", "folder 9"), for messages; never written to splits.json.
SOURCE_KEY = "_source"
CENTERING_KEYS = ("centering_front_lr", "centering_front_tb", "centering_back_lr", "centering_back_tb")


@dataclass(frozen=True)
class Columns:
    """CSV column names; the last five are optional labels."""
    id: str = "id"
    front: str = "front"
    back: str = "back"
    grade: str = "grade"
    edge: str = "edge"
    centering_front_lr: str = "centering_front_lr"
    centering_front_tb: str = "centering_front_tb"
    centering_back_lr: str = "centering_back_lr"
    centering_back_tb: str = "centering_back_tb"

    @staticmethod
    def required() -> tuple[str, ...]:
        return ("id", "front", "back", "grade")

    @staticmethod
    def flag(field_name: str) -> str:
        return "--col-" + field_name.replace("_", "-")


def number(text: str):
    """'9' -> 9, '9.0' -> 9, '0.25' -> 0.25, anything else -> the text itself (for the checks to flag)."""
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):  # 'nan' and 'inf' parse as floats but are not labels
        return text
    return int(value) if value.is_integer() else value


def resolve_input(value: str, base: str) -> str:
    """An image path from a CSV cell: absolute and gs:// stay, others are relative to `base`."""
    if storage.is_gcs(value) or os.path.isabs(value):
        return value
    if storage.is_gcs(base):
        return storage.join(base, value)
    return str(Path(base, value).resolve())


def read_csv(csv_path: str, images: str | None, columns: Columns = Columns(),
             require: tuple[str, ...] = ()) -> list[dict]:
    """Rows of the CSV as record dicts. `require`: optional Columns fields the user named explicitly."""
    try:
        text = storage.read_text(csv_path)
    except storage.StorageError as exc:
        raise SplitsInputError(str(exc)) from None
    except UnicodeDecodeError:
        raise SplitsInputError(f"{csv_path}: not UTF-8 text (save the spreadsheet as CSV UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # Excel writes a byte-order mark
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise SplitsInputError(f"{csv_path}: empty CSV (expected a header row with id, front, back, grade)")
    reader.fieldnames = header
    for key in (*Columns.required(), *require):
        name = getattr(columns, key)
        if name not in header:
            raise SplitsInputError(f"{csv_path}: missing column '{name}' (columns: {', '.join(header)}; "
                                   f"pick another with {Columns.flag(key)})")
    base = images if images is not None else _parent(csv_path)
    name = csv_path.rstrip("/").rsplit("/", 1)[-1] if storage.is_gcs(csv_path) else Path(csv_path).name
    rows = []
    for row in reader:
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cells.values()):
            continue  # blank line
        if not cells[columns.id]:
            raise SplitsInputError(f"{csv_path}: line {reader.line_num}: empty '{columns.id}' "
                                   f"(every row needs a card id)")
        rows.append({**_row_record(cells, columns, base), SOURCE_KEY: f"{name} line {reader.line_num}"})
    return rows


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if storage.is_gcs(path) else str(Path(path).resolve().parent)


def _row_record(cells: dict[str, str], columns: Columns, base: str) -> dict:
    rec: dict = {"id": cells[columns.id], "grade": number(cells[columns.grade])}
    for side in ("front", "back"):
        if cells[getattr(columns, side)]:
            rec[side] = resolve_input(cells[getattr(columns, side)], base)
    if cells.get(columns.edge):
        rec["edge"] = number(cells[columns.edge])
    centering = [cells.get(getattr(columns, key), "") for key in CENTERING_KEYS]
    if any(centering):
        # A partly filled row keeps its gaps as null, which the aux-label check reports.
        values = [number(v) if v else None for v in centering]
        rec["centering"] = {"front": values[:2], "back": values[2:]}
    return rec


def list_files(root: str) -> list[str]:
    """Every file under `root` as a path relative to it ('/'-separated), hidden names skipped."""
    if storage.is_gcs(root):
        return _list_gcs(root)
    if not Path(root).is_dir():
        raise SplitsInputError(f"{root}: images directory not found")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def _list_gcs(root: str, max_depth: int = 8) -> list[str]:
    """gs:// has no directories, only prefixes: storage.list_dir gives one level, files and prefixes
    alike, so anything that is not an image name and lists children is walked into."""
    prefix = root.rstrip("/") + "/"
    out, stack = [], [(root.rstrip("/"), 0)]
    while stack:
        here, depth = stack.pop()
        for entry in storage.list_dir(here):
            name = entry.rsplit("/", 1)[-1]
            if name.startswith("."):
                continue
            if not IMAGE_NAME.match(name) and depth < max_depth and storage.list_dir(entry):
                stack.append((entry, depth + 1))
            else:
                out.append(entry[len(prefix):])
    return sorted(out)


def read_folders(images: str) -> tuple[list[dict], list[str]]:
    """Records from `<images>/<grade>/[...]/<id>_front|back.<ext>`, and the files that did not fit."""
    found: dict[tuple[str, str, str], dict] = {}
    ignored = []
    for rel in list_files(images):
        parts = rel.split("/")
        match = IMAGE_NAME.match(parts[-1])
        if len(parts) < 2 or not match:
            ignored.append(rel)
            continue
        key = (parts[0], "/".join(parts[1:-1]), match["id"])
        rec = found.setdefault(key, {"id": match["id"], "grade": number(parts[0]),
                                     SOURCE_KEY: "folder " + "/".join(parts[:-1])})
        side = match["side"].lower()
        if side in rec:
            ignored.append(rel)  # e.g. c1_front.jpg next to c1_front.png: keep the first
            continue
        rec[side] = storage.join(images, rel) if storage.is_gcs(images) else str(Path(images, rel).resolve())
    if not found:
        raise SplitsInputError(f"{images}: no images named <grade>/<id>_front.jpg or <id>_back.jpg found")
    return list(found.values()), ignored


def column_fields() -> list[str]:
    return [f.name for f in fields(Columns)]
