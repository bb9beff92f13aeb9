"""The printed design of a pristine card: front (border, frame, name bar, artwork, text) and back.

Everything is drawn with PIL on a card-sized canvas; `layout.py` decides where the print sits relative
to the cut edge (the centering), `defects.py` damages it afterwards. Colours and shapes are random so
the model cannot learn a grade from the artwork, only from borders and damage.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[int, int, int, int]

# Card "sets": front border colour and back design. Yellow/silver borders with a blue swirl back look
# like a trading-card game; a white border with a cardboard stats back looks like a sports card.
STYLES = ("monster", "monster_silver", "sports")
STYLE_WEIGHTS = (0.5, 0.2, 0.3)
BORDER_COLOURS = {"monster": (244, 206, 62), "monster_silver": (196, 200, 207), "sports": (238, 235, 226)}
FRAME_COLOURS = ((205, 72, 55), (66, 118, 204), (86, 162, 84), (150, 96, 172), (176, 134, 92),
                 (188, 188, 180), (224, 150, 60))
INK = (34, 30, 28)


def jitter(rng: np.random.Generator, colour, amount: int = 10) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _gradient(size: tuple[int, int], top, bottom) -> Image.Image:
    w, h = size
    ramp = np.linspace(np.array(top, float), np.array(bottom, float), max(h, 1))
    return Image.fromarray(np.broadcast_to(ramp[:, None, :], (h, w, 3)).astype(np.uint8))


def text_marks(draw: ImageDraw.ImageDraw, rng: np.random.Generator, x0: int, y0: int, x1: int,
               height: int, colour, fill_frac: float = 1.0) -> None:
    """A line of word-like dark blocks: reads as text at card scale without needing a font."""
    x, end = x0, x0 + int((x1 - x0) * fill_frac)
    height = max(1, height)
    while x < end:
        word = int(height * rng.uniform(1.0, 4.0))
        draw.rectangle((x, y0, min(x + word, end), y0 + height - 1), fill=colour)
        x += word + max(1, int(height * 0.8))


def _character(draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    """A cartoon creature: body, head, ears, eyes, tail, in one random vivid colour."""
    body = tuple(int(c) for c in rng.integers(40, 256, 3))
    dark = _mix(body, (0, 0, 0), 0.45)
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.58, 0.68)
    bw, bh = w * rng.uniform(0.16, 0.24), h * rng.uniform(0.18, 0.26)
    tail_dir = 1 if rng.random() < 0.5 else -1
    tail = [(cx + tail_dir * bw * 0.8, cy + bh * 0.3), (cx + tail_dir * bw * 1.7, cy - bh * 0.4),
            (cx + tail_dir * bw * 1.4, cy - bh * 1.1)]
    draw.line(tail, fill=dark, width=max(2, int(w * 0.05)))
    draw.ellipse((cx - bw, cy - bh, cx + bw, cy + bh), fill=body, outline=dark, width=max(1, w // 80))
    draw.ellipse((cx - bw * 0.55, cy - bh * 0.2, cx + bw * 0.55, cy + bh * 0.85), fill=_mix(body, (255, 255, 255), 0.5))
    hr = bw * rng.uniform(0.7, 0.95)
    hx, hy = cx + w * rng.uniform(-0.04, 0.04), cy - bh - hr * 0.6
    for side in (-1, 1):
        draw.polygon([(hx + side * hr * 0.3, hy - hr * 0.6), (hx + side * hr * 0.95, hy - hr * 1.7),
                      (hx + side * hr * 0.9, hy - hr * 0.2)], fill=body, outline=dark)
    draw.ellipse((hx - hr, hy - hr, hx + hr, hy + hr), fill=body, outline=dark, width=max(1, w // 80))
    er = hr * 0.22
    for side in (-1, 1):
        ex, ey = hx + side * hr * 0.4, hy - hr * 0.1
        draw.ellipse((ex - er, ey - er, ex + er, ey + er), fill=(255, 255, 255))
        draw.ellipse((ex - er * 0.5, ey - er * 0.4, ex + er * 0.5, ey + er * 0.6), fill=(20, 20, 20))
    draw.arc((hx - hr * 0.35, hy + hr * 0.1, hx + hr * 0.35, hy + hr * 0.55), 20, 160, fill=dark,
             width=max(1, w // 90))


def _player(draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    """A batter: cap, head, jersey, trousers and a bat."""
    jersey = tuple(int(c) for c in rng.integers(30, 230, 3))
    skin = jitter(rng, (214, 170, 130), 25)
    cx, top = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.18, 0.26)
    hr = w * 0.08
    draw.rectangle((cx - w * 0.1, top + hr * 3.6, cx + w * 0.1, h * 0.98), fill=(235, 235, 230))
    draw.polygon([(cx - w * 0.17, top + hr * 1.6), (cx + w * 0.17, top + hr * 1.6),
                  (cx + w * 0.13, top + hr * 4.2), (cx - w * 0.13, top + hr * 4.2)], fill=jersey)
    draw.ellipse((cx - hr, top, cx + hr, top + hr * 2), fill=skin)
    draw.chord((cx - hr * 1.05, top - hr * 0.2, cx + hr * 1.05, top + hr * 1.4), 180, 360, fill=jersey)
    bat_dir = 1 if rng.random() < 0.5 else -1
    draw.line([(cx + bat_dir * w * 0.12, top + hr * 2.5), (cx + bat_dir * w * 0.38, top - hr * 0.5)],
              fill=(150, 100, 55), width=max(2, int(w * 0.035)))
    text_marks(draw, rng, int(cx - w * 0.06), int(top + hr * 2.3), int(cx + w * 0.06), max(1, int(hr * 0.5)),
               (250, 250, 250))


def artwork(rng: np.random.Generator, size: tuple[int, int], style: str) -> Image.Image:
    """The picture inside the art window."""
    w, h = size
    if style == "sports":
        art = _gradient(size, jitter(rng, (120, 150, 190), 25), jitter(rng, (70, 140, 70), 20))
        draw = ImageDraw.Draw(art)
        for row in range(4):  # stands behind the player
            y = int(h * (0.05 + 0.08 * row))
            draw.rectangle((0, y, w, y + max(1, h // 40)), fill=jitter(rng, (90, 90, 110), 20))
        _player(draw, rng, w, h)
        return art
    art = _gradient(size, jitter(rng, (150, 200, 240), 40), jitter(rng, (240, 230, 190), 30))
    draw = ImageDraw.Draw(art)
    for _ in range(int(rng.integers(2, 5))):  # hills, sun, rocks
        r = w * rng.uniform(0.08, 0.3)
        x, y = w * rng.random(), h * rng.uniform(0.2, 1.0)
        draw.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=jitter(rng, (120, 170, 110), 50))
    draw.rectangle((0, int(h * 0.82), w, h), fill=jitter(rng, (140, 180, 100), 30))
    _character(draw, rng, w, h)
    return art


def draw_front_print(card: Image.Image, rng: np.random.Generator, frame: Box, style: str) -> None:
    """Frame, name bar, art window, attack text, set line: the print inside the border."""
    draw = ImageDraw.Draw(card)
    x0, y0, x1, y1 = frame
    fw, fh = x1 - x0, y1 - y0
    colour = jitter(rng, FRAME_COLOURS[int(rng.integers(len(FRAME_COLOURS)))], 12)
    draw.rectangle(frame, fill=colour, outline=_mix(colour, (0, 0, 0), 0.35), width=max(1, fw // 100))
    pad = max(2, round(0.045 * fw))
    name_h = max(3, round(0.075 * fh))
    text_marks(draw, rng, x0 + pad, y0 + pad, x1 - pad, name_h, INK, fill_frac=rng.uniform(0.35, 0.55))
    draw.ellipse((x1 - pad - name_h, y0 + pad, x1 - pad, y0 + pad + name_h), fill=_mix(colour, INK, 0.5))
    art_box = (x0 + pad, y0 + pad * 2 + name_h, x1 - pad, y0 + round(0.6 * fh))
    rim = max(1, round(0.015 * fw))
    draw.rectangle(art_box, fill=(214, 182, 90) if style != "sports" else (40, 40, 60))
    inner = (art_box[0] + rim, art_box[1] + rim, art_box[2] - rim, art_box[3] - rim)
    card.paste(artwork(rng, (inner[2] - inner[0], inner[3] - inner[1]), style), inner[:2])
    _text_box(draw, rng, (x0 + pad, art_box[3] + pad, x1 - pad, y1 - pad), colour)


def _text_box(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: Box, colour) -> None:
    x0, y0, x1, y1 = box
    h = y1 - y0
    line_h = max(2, round(h * 0.09))
    draw.rectangle(box, fill=_mix(colour, (255, 255, 255), 0.7))
    rows = (0.12, 0.42)
    for row in rows:  # two "attacks": energy symbol, name, damage
        y = y0 + round(h * row)
        draw.ellipse((x0 + line_h // 2, y, x0 + line_h // 2 + line_h * 1.4, y + line_h * 1.4),
                     fill=_mix(colour, INK, 0.3))
        text_marks(draw, rng, x0 + line_h * 3, y, x1 - line_h * 4, round(line_h * 1.3), INK,
                   fill_frac=rng.uniform(0.4, 0.8))
        text_marks(draw, rng, x1 - line_h * 3, y, x1 - line_h // 2, round(line_h * 1.3), INK)
        text_marks(draw, rng, x0 + line_h, y + line_h * 2, x1 - line_h, max(1, line_h // 2),
                   _mix(INK, (255, 255, 255), 0.4), fill_frac=rng.uniform(0.5, 0.95))
    text_marks(draw, rng, x0 + line_h, y1 - line_h * 2, x1 - line_h, max(1, line_h // 2),
               _mix(INK, (255, 255, 255), 0.3), fill_frac=0.6)


def draw_back_print(card: Image.Image, rng: np.random.Generator, inner: Box, style: str) -> None:
    """The back's repeated design inside its border; the same for every card of a style."""
    if style == "sports":
        _sports_back(card, rng, inner)
    else:
        _monster_back(card, rng, inner)


def _monster_back(card: Image.Image, rng: np.random.Generator, inner: Box) -> None:
    """Blue swirl with a ball emblem; drawn on its own canvas so the pattern stops at the border."""
    x0, y0, x1, y1 = inner
    w, h = x1 - x0, y1 - y0
    panel = _gradient((w, h), (84, 146, 236), (58, 112, 212))
    draw = ImageDraw.Draw(panel)
    step = max(4, w // 10)
    for k in range(-h // step - 1, w // step + 2):  # diagonal stripes: the repeated part
        draw.line([(k * step, 0), (k * step + h, h)], fill=(100, 160, 242), width=max(1, step // 4))
    cx, cy = w / 2, h / 2
    for i in range(6, 0, -1):  # vortex rings
        r = w * 0.09 * i
        draw.ellipse((cx - r, cy - r * 1.2, cx + r, cy + r * 1.2), outline=(130, 185, 250), width=max(1, w // 60))
    r = w * 0.26
    ink = (24, 24, 24)
    draw.pieslice((cx - r, cy - r, cx + r, cy + r), 180, 360, fill=(214, 44, 40))
    draw.pieslice((cx - r, cy - r, cx + r, cy + r), 0, 180, fill=(246, 246, 240))
    band = max(1, round(r * 0.14))
    draw.rectangle((cx - r, cy - band / 2, cx + r, cy + band / 2), fill=ink)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=ink, width=band)
    draw.ellipse((cx - r * 0.3, cy - r * 0.3, cx + r * 0.3, cy + r * 0.3), fill=(246, 246, 240),
                 outline=ink, width=band)
    draw.rounded_rectangle((w * 0.1, h * 0.08, w * 0.62, h * 0.2), radius=w * 0.05,
                           fill=(250, 212, 40), outline=(30, 60, 150), width=max(1, w // 70))
    draw.rectangle((0, 0, w - 1, h - 1), outline=(150, 196, 250), width=max(1, w // 90))
    card.paste(panel, (x0, y0))


def _sports_back(card: Image.Image, rng: np.random.Generator, inner: Box) -> None:
    x0, y0, x1, y1 = inner
    w, h = x1 - x0, y1 - y0
    draw = ImageDraw.Draw(card)
    draw.rectangle(inner, fill=(196, 178, 146))
    draw.rectangle((x0, y0, x1, y0 + round(h * 0.14)), fill=(176, 42, 44))
    text_marks(draw, rng, x0 + w // 12, y0 + round(h * 0.04), x1 - w // 12, max(2, round(h * 0.05)),
               (250, 246, 236), fill_frac=0.7)
    row_h = max(2, round(h * 0.045))
    y = y0 + round(h * 0.22)
    while y + row_h < y1 - row_h:  # stats table: the repeated part
        draw.line([(x0 + w // 16, y + row_h + 1), (x1 - w // 16, y + row_h + 1)], fill=(150, 130, 100))
        for col in range(6):
            cx = x0 + w // 16 + col * (w - w // 8) // 6
            draw.rectangle((cx, y + 1, cx + w // 14, y + row_h - 1), fill=(60, 46, 36))
        y += row_h * 2
