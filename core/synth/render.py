"""One synthetic card, front and back, as scanner images.

Drawn at twice the output size and reduced (anti-aliasing, and half-pixel centering precision), on a
neutral grey scanner bed. The print is placed in whole pixels at that scale, so the centering that is
actually drawn is a ratio of pixel counts: `render_card` returns those realised shares, and the grade is
computed from them, never from the intended ones.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from core.synth import artwork
from core.synth.defects import card_mask, draw_defects, plan_defects
from core.synth.grading import CardAttributes

SUPERSAMPLE = 2
CARD_FILL = 0.88  # card width (or height) as a share of the scan
BORDER_TOTAL = 0.18  # left+right border as a share of card width; top+bottom is the same width in pixels
NOISE_HALF_RANGE = 3  # sensor noise, in grey levels


@dataclasses.dataclass(frozen=True)
class CardLayout:
    card: tuple[int, int]  # width, height on the supersampled canvas
    border_total: int  # left+right (= top+bottom) border in pixels
    front: tuple[int, int]  # left, top border of the front print in pixels
    back: tuple[int, int]

    def share(self, side: str) -> tuple[float, float]:
        left, top = getattr(self, side)
        return left / self.border_total, top / self.border_total

    def print_box(self, side: str) -> tuple[int, int, int, int]:
        left, top = getattr(self, side)
        w, h = self.card
        return left, top, w - (self.border_total - left), h - (self.border_total - top)


def layout_for(size: tuple[int, int], attrs: CardAttributes) -> CardLayout:
    """Card size and print offsets in pixels, rounding the intended shares to whole pixels."""
    w2, h2 = size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE
    card_w = int(min(w2, h2 * 5 / 7) * CARD_FILL)
    card_h = round(card_w * 7 / 5)
    total = max(4, round(card_w * BORDER_TOTAL))

    def offset(share: float) -> int:  # never 0 or total: a border always shows, shares stay in (0, 1)
        return int(min(total - 1, max(1, round(share * total))))

    return CardLayout(card=(card_w, card_h), border_total=total,
                      front=(offset(attrs.front_lr), offset(attrs.front_tb)),
                      back=(offset(attrs.back_lr), offset(attrs.back_tb)))


def realised(attrs: CardAttributes, layout: CardLayout) -> CardAttributes:
    (flr, ftb), (blr, btb) = layout.share("front"), layout.share("back")
    return dataclasses.replace(attrs, front_lr=flr, front_tb=ftb, back_lr=blr, back_tb=btb)


def _scan(card: Image.Image, mask: Image.Image, size: tuple[int, int], offset: tuple[int, int],
          bed: int, rng: np.random.Generator) -> Image.Image:
    """Put the card on the scanner bed, reduce to the output size, add sensor noise."""
    scan = Image.new("RGB", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), (bed, bed, bed + 2))
    scan.paste(card, offset, mask)
    small = np.asarray(scan.reduce(SUPERSAMPLE), dtype=np.int16)
    # uniform integer noise (sd 2): Gaussian noise cost more than the drawing
    noisy = small + rng.integers(-NOISE_HALF_RANGE, NOISE_HALF_RANGE + 1, small.shape, dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def render_card(rng: np.random.Generator, attrs: CardAttributes, size: tuple[int, int]
                ) -> tuple[Image.Image, Image.Image, CardAttributes]:
    """(front, back, attributes as drawn) for one card at output `size` (width, height)."""
    layout = layout_for(size, attrs)
    style = artwork.STYLES[int(rng.choice(len(artwork.STYLES), p=artwork.STYLE_WEIGHTS))]
    plan = plan_defects(rng, attrs)
    slack = (size[0] * SUPERSAMPLE - layout.card[0], size[1] * SUPERSAMPLE - layout.card[1])
    offset = tuple(int(s // 2 + rng.integers(-(s // 6), s // 6 + 1)) for s in slack)
    bed = int(rng.integers(38, 80))

    front = Image.new("RGB", layout.card, artwork.jitter(rng, artwork.BORDER_COLOURS[style], 8))
    artwork.draw_front_print(front, rng, layout.print_box("front"), style)
    draw_defects(front, plan, "front")
    back_border = (238, 234, 222) if style == "sports" else artwork.jitter(rng, (22, 44, 118), 6)
    back = Image.new("RGB", layout.card, back_border)
    artwork.draw_back_print(back, rng, layout.print_box("back"), style)
    draw_defects(back, plan, "back")

    images = tuple(_scan(img, card_mask(layout.card, plan, mirror=side == "back"), size, offset, bed, rng)
                   for img, side in ((front, "front"), (back, "back")))
    return images[0], images[1], realised(attrs, layout)
