"""Writing a synthetic card set: JPEGs under DIR/img and DIR/splits.json (docs/design.md §1).

Every card has its own random stream seeded by (seed, index), so a card does not change when `n`
does, and a seed always gives the same bytes. splits.json is removed first and written last
(atomically), so an interrupted run never leaves a splits.json that points at missing images.

The generator only ever writes into a folder that is empty (or missing) or that holds its own marker
file, MARKER_NAME, written before anything else: a typo in `data.splits` must never make it delete a
user's real splits.json or overwrite their scans.
"""
from __future__ import annotations

import io
import json
import numbers
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core import storage
from core.parallel import ordered_map
from core.synth.grading import CardAttributes, caps, grade_from_attributes
from core.synth.render import render_card
from core.synth.sampling import draw_target_grade, sample_attributes, stratified_split

MARKER_NAME = ".psa-synthetic"
MARKER_TEXT = "written by core.synth: this folder holds a generated card set and may be regenerated\n"
MIN_SIZE = (40, 56)
JPEG_QUALITY = 90
# Random streams are keyed (seed, purpose[, index]) so the split's never coincides with a card's.
_CARD_STREAM, _SPLIT_STREAM = 1, 2


class SynthError(ValueError):
    """Bad generator arguments; the message says which and what is expected."""


@dataclass(frozen=True)
class SynthCard:
    front: Image.Image
    back: Image.Image
    attributes: CardAttributes  # as drawn (centering rounded to whole pixels)
    grade: int


def make_card(seed: int, index: int, size: tuple[int, int]) -> SynthCard:
    """Card number `index` of the set with this seed, rendered at `size` (width, height)."""
    rng = np.random.default_rng([seed, _CARD_STREAM, index])
    intended = sample_attributes(rng, draw_target_grade(rng))
    front, back, drawn = render_card(rng, intended, size)
    return SynthCard(front, back, drawn, grade_from_attributes(drawn))


def check_args(n: int, seed: int, size: tuple[int, int], val_frac: float, test_frac: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SynthError(f"seed={seed!r}: expected a whole number >= 0")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise SynthError(f"n={n!r}: expected a whole number of cards >= 1")
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in size) \
            or size[0] < MIN_SIZE[0] or size[1] < MIN_SIZE[1]:
        raise SynthError(f"size={tuple(size)!r}: expected (width, height) of at least {MIN_SIZE[0]}x{MIN_SIZE[1]}")
    for name, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= frac < 1.0:
            raise SynthError(f"{name}={frac!r}: expected a fraction in [0, 1)")
    held_out = (max(1, round(n * val_frac)) if val_frac > 0 else 0) + \
        (max(1, round(n * test_frac)) if test_frac > 0 else 0)
    if held_out >= n:
        raise SynthError(f"n={n} with val_frac={val_frac}, test_frac={test_frac} leaves no training cards")


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _record(card_id: str, card: SynthCard) -> dict:
    a = card.attributes
    return {"id": card_id, "front": f"img/{card_id}_front.jpg", "back": f"img/{card_id}_back.jpg",
            "grade": card.grade, "edge": round(a.edge_label, 4),
            # 6 decimals: pixel ratios stay on the same side of every band edge after rounding
            "centering": {"front": [round(a.front_lr, 6), round(a.front_tb, 6)],
                          "back": [round(a.back_lr, 6), round(a.back_tb, 6)]},
            # Each criterion's cap (docs/design.md §2): the grade is their minimum.
            "subgrades": caps(a)}


def generate(out_dir, n: int, seed: int, size: tuple[int, int] = (200, 280), val_frac: float = 0.1,
             test_frac: float = 0.1) -> Path:
    """Render `n` cards into out_dir and return the path of its splits.json."""
    if storage.is_gcs(out_dir):
        raise SynthError(f"out_dir {out_dir}: the generator writes a local directory; upload it afterwards")
    size = tuple(size)
    check_args(n, seed, size, val_frac, test_frac)
    n, seed, size = int(n), int(seed), (int(size[0]), int(size[1]))
    out = Path(out_dir)
    claim_folder(out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    splits_path = out / "splits.json"
    splits_path.unlink(missing_ok=True)  # a stale index must not outlive the images it describes
    width = max(4, len(str(n)))

    def write_card(i: int) -> dict:  # cards are independent (own random stream): any order, same bytes
        card_id = f"c{i:0{width}d}"
        card = make_card(seed, i, size)
        (out / "img" / f"{card_id}_front.jpg").write_bytes(_jpeg(card.front))
        (out / "img" / f"{card_id}_back.jpg").write_bytes(_jpeg(card.back))
        return _record(card_id, card)

    records = list(ordered_map(write_card, range(1, n + 1)))
    parts = stratified_split(np.random.default_rng([seed, _SPLIT_STREAM]), [r["grade"] for r in records],
                             val_frac, test_frac)
    doc = {"version": 1,
           "synthetic": {"n": n, "seed": seed, "size": list(size), "val_frac": val_frac, "test_frac": test_frac,
                         "subgrades": True},
           **{name: [records[i] for i in idx] for name, idx in parts.items()}}
    storage.write_text_atomic(splits_path, json.dumps(doc, indent=1) + "\n")
    return splits_path


def claim_folder(out: Path) -> None:
    """Make sure `out` is ours to write: missing, empty, or marked by an earlier run of the generator.

    Raises SynthError (one line, naming the folder and what it holds) for anything else; writes the
    marker otherwise, before the first image, so an interrupted run can be regenerated.
    """
    marker = out / MARKER_NAME
    if out.exists() and not out.is_dir():
        raise SynthError(f"out_dir {out}: is a file, not a folder for the synthetic card set")
    if not marker.is_file():
        present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if present and not _made_before_the_marker(out):
            shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
            raise SynthError(f"out_dir {out}: not empty ({shown}) and not made by the synthetic generator; "
                             f"refusing to write there (point data.splits at an empty folder, or set "
                             f"data.synthetic = false to train on your own cards)")
    out.mkdir(parents=True, exist_ok=True)
    storage.write_text_atomic(marker, MARKER_TEXT)


_CARD_FILE = re.compile(r"^c\d+_(front|back)\.jpg$")


def _made_before_the_marker(out: Path) -> bool:
    """A set this generator wrote before it left a marker: only splits.json (with its "synthetic" block)
    and img/cNNNN_{front,back}.jpg, nothing else. Adopting it overwrites only the generator's own files."""
    if {p.name for p in out.iterdir()} - {"splits.json", "img"}:
        return False
    try:
        made = json.loads((out / "splits.json").read_text(encoding="utf-8")).get("synthetic")
    except (OSError, ValueError, AttributeError):
        return False
    img = out / "img"
    return isinstance(made, dict) and (not img.exists() or (img.is_dir() and all(
        p.is_file() and _CARD_FILE.match(p.name) for p in img.iterdir())))


def grade_histogram(splits_path) -> dict[int, int]:
    doc = json.loads(Path(splits_path).read_text())
    counts = Counter(r["grade"] for name in ("train", "val", "test") for r in doc[name])
    return {g: counts.get(g, 0) for g in range(1, 11)}
