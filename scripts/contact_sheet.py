"""Render a contact sheet of synthetic cards (front | back, grade and centering under each).

    python scripts/contact_sheet.py [--out docs/synthetic_cards.png] [--seed 0] [--size 200x280] [--cards 20]

Picks cards so that every grade 10..1 shows (two of each for 20 cards), best first, because a random
draw would be mostly 8-10. The cards are the same ones `python -m core.synth` writes for that seed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from core.synth import caps, crease_cap, make_card  # noqa: E402
from core.synth.__main__ import parse_size  # noqa: E402
from core.centering import larger_share  # noqa: E402

COLUMNS = 5
GAP = 8
CAPTION_LINES = 3


def _ratio(share: float) -> str:
    big = round(larger_share(share) * 100)
    return f"{big}/{100 - big}"


def pick_cards(seed: int, size: tuple[int, int], count: int) -> list[tuple[int, object]]:
    """(index, card) pairs covering the grades 10..1 evenly, scanning the set from card 1."""
    per_grade = max(1, count // 10)
    wanted = {g: per_grade for g in range(1, 11)}
    chosen: list[tuple[int, object]] = []
    index = 0
    while len(chosen) < count and index < 20000:
        index += 1
        card = make_card(seed, index, size)
        if wanted.get(card.grade, 0) > 0 or (sum(wanted.values()) == 0):
            wanted[card.grade] = wanted.get(card.grade, 0) - 1
            chosen.append((index, card))
    return sorted(chosen, key=lambda ic: (-ic[1].grade, ic[0]))


def caption(index: int, card) -> list[str]:
    a = card.attributes
    c = caps(a)
    c = {("crease" if k == "surface" and crease_cap(a.crease) == v else k): v for k, v in c.items()}
    worst = ", ".join(k for k, v in c.items() if v == card.grade)
    return [f"c{index:04d}  PSA {card.grade}  (by {worst})",
            f"front {_ratio(a.front_lr)} LR {_ratio(a.front_tb)} TB",
            f"back  {_ratio(a.back_lr)} LR {_ratio(a.back_tb)} TB  edge {a.edge_label:.2f}"]


def contact_sheet(seed: int, size: tuple[int, int], count: int) -> Image.Image:
    font = ImageFont.load_default()
    line_h = 13
    cell_w, cell_h = size[0] * 2 + GAP // 2, size[1] + CAPTION_LINES * line_h + 6
    rows = -(-count // COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * (cell_w + GAP) + GAP, rows * (cell_h + GAP) + GAP), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for k, (index, card) in enumerate(pick_cards(seed, size, count)):
        x = GAP + (k % COLUMNS) * (cell_w + GAP)
        y = GAP + (k // COLUMNS) * (cell_h + GAP)
        sheet.paste(card.front, (x, y))
        sheet.paste(card.back, (x + size[0] + GAP // 2, y))
        for j, text in enumerate(caption(index, card)):
            draw.text((x, y + size[1] + 3 + j * line_h), text, fill=(20, 20, 20), font=font)
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/synthetic_cards.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=parse_size, default=(200, 280))
    p.add_argument("--cards", type=int, default=20)
    args = p.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # 256 colours keep the PNG small enough for the repository and still show every mark
    contact_sheet(args.seed, args.size, args.cards).quantize(256, dither=Image.Dither.NONE).save(
        args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
