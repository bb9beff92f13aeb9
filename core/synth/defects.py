"""Damage drawn on a card: corner whitening and rounding, edge chips and wear, scratches and print
lines, creases.

A `DefectPlan` holds the damage in card units (u, v in [0, 1] across the front) so one plan is drawn
on both sides: the back is the front mirrored left-right, as when you turn a card over. The size of
each mark grows with its severity, which is what ties the picture to the grade caps. Backs show
whitening at full strength (white on the dark back); the glossy front shows it fainter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from core.synth.grading import CardAttributes

WHITE = (250, 250, 246)
BASE_CORNER_RADIUS = 0.035  # of card width: every card's factory rounding
# Opacity of whitening per side: white card stock shows through chipped ink most on the back.
WHITENING_ALPHA = {"front": 0.7, "back": 1.0}
SCRATCH_ALPHA = {"front": 1.0, "back": 0.45}


@dataclass
class DefectPlan:
    corners: list[tuple[float, float, float]] = field(default_factory=list)  # (u, v, severity)
    specks: list[tuple[float, float, float]] = field(default_factory=list)  # (u, v, radius in card widths)
    # (u, v on the edge, along a horizontal edge?, length, depth, jagged depth profile in [0, 1])
    chips: list[tuple[float, float, bool, float, float, tuple[float, ...]]] = field(default_factory=list)
    wear: list[tuple[float, float, float, float, float]] = field(default_factory=list)  # u0, v0, u1, v1, width
    scratches: list[tuple[float, float, float, float, float]] = field(default_factory=list)  # u0, v0, u1, v1, alpha
    print_lines: list[tuple[float, float, float, float]] = field(default_factory=list)  # u0, v0, u1, v1
    crease: tuple[float, float, float, float, float] | None = None  # u0, v0, u1, v1, severity


_CORNERS = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


def _plan_corners(rng: np.random.Generator, severity: float, plan: DefectPlan) -> None:
    if severity <= 0:
        return
    worst = int(rng.integers(4))
    for i, (u, v) in enumerate(_CORNERS):
        sev = severity if i == worst else (severity * rng.uniform(0.2, 0.9) if rng.random() < 0.6 else 0.0)
        if sev <= 0:
            continue
        plan.corners.append((u, v, sev))
        for _ in range(1 + int(sev * 6)):  # specks of white along the two edges meeting there
            along, off = rng.uniform(0.02, 0.04 + 0.14 * sev), rng.uniform(0.0, 0.008)
            du, dv = (along, off) if rng.random() < 0.5 else (off, along * 0.72)
            plan.specks.append((abs(u - du), abs(v - dv), 0.006 + 0.012 * sev * rng.random()))


def _plan_edges(rng: np.random.Generator, severity: float, plan: DefectPlan) -> None:
    if severity <= 0:
        return
    count = 2 + int(severity * 14)
    for k in range(count):
        scale = 1.0 if k == 0 else rng.uniform(0.3, 1.0)  # the first chip is the worst one
        horizontal = rng.random() < 0.5
        t, side = rng.uniform(0.08, 0.92), float(rng.integers(2))
        u, v = (t, side) if horizontal else (side, t)
        jags = tuple(float(j) for j in rng.uniform(0.3, 1.0, 5))
        plan.chips.append((u, v, horizontal, scale * (0.03 + 0.10 * severity),
                           scale * (0.01 + 0.025 * severity), jags))
    if severity > 0.25:  # long whitened stretches: edge wear rather than single chips
        for _ in range(1 + int(severity * 3)):
            length, t = rng.uniform(0.2, 0.25 + 0.5 * severity), rng.uniform(0.0, 0.6)
            side = float(rng.integers(2))
            seg = (t, side, t + length, side) if rng.random() < 0.5 else (side, t, side, t + length)
            plan.wear.append((*seg, 0.006 + 0.012 * severity))


def _plan_surface(rng: np.random.Generator, severity: float, plan: DefectPlan) -> None:
    if severity <= 0:
        return
    for _ in range(1 + int(severity * 8)):
        u, v = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.9)
        angle, length = rng.uniform(0, math.pi), 0.15 + 0.5 * severity * rng.uniform(0.5, 1.0)
        du, dv = math.cos(angle) * length / 2, math.sin(angle) * length / 2 / 1.4
        plan.scratches.append((u - du, v - dv, u + du, v + dv, 0.45 + 0.5 * severity))
    if severity > 0.3:  # print lines run straight across the whole print
        for _ in range(1 + int(severity * 2)):
            t = rng.uniform(0.15, 0.85)
            plan.print_lines.append((0.08, t, 0.92, t) if rng.random() < 0.6 else (t, 0.08, t, 0.92))


def _plan_crease(rng: np.random.Generator, severity: float, plan: DefectPlan) -> None:
    if severity <= 0:
        return
    if severity < 0.5:  # a folded corner: a short line cutting it off
        u, v = _CORNERS[int(rng.integers(4))]
        a, b = rng.uniform(0.3, 0.55), rng.uniform(0.25, 0.4)
        plan.crease = (abs(u - a), v, u, abs(v - b), severity)
    else:  # a fold right across the card
        if rng.random() < 0.5:
            plan.crease = (0.0, rng.uniform(0.1, 0.9), 1.0, rng.uniform(0.1, 0.9), severity)
        else:
            plan.crease = (rng.uniform(0.1, 0.9), 0.0, rng.uniform(0.1, 0.9), 1.0, severity)


def plan_defects(rng: np.random.Generator, attrs: CardAttributes) -> DefectPlan:
    plan = DefectPlan()
    _plan_corners(rng, attrs.corners, plan)
    _plan_edges(rng, attrs.edges, plan)
    _plan_surface(rng, attrs.surface, plan)
    _plan_crease(rng, attrs.crease, plan)
    return plan


def _px(u: float, v: float, w: int, h: int, mirror: bool) -> tuple[float, float]:
    return ((1.0 - u) if mirror else u) * w, v * h


def corner_radius(severity: float) -> float:
    """Corner radius in card widths: worn corners are rounder."""
    return BASE_CORNER_RADIUS + 0.07 * severity


def _chip_outline(chip, w: int, h: int, mirror: bool) -> list[tuple[float, float]]:
    """A jagged bite out of the edge: the edge line, then an irregular inner boundary."""
    u, v, horizontal, length, depth, jags = chip
    x, y = _px(u, v, w, h, mirror)
    half, deep = (length * w / 2 if horizontal else length * h / 2), depth * w
    inward = 1.0 if (v < 0.5 if horizontal else x < w / 2) else -1.0
    ts = np.linspace(-1.0, 1.0, len(jags) + 2)
    profile = [0.0, *jags, 0.0]
    if horizontal:
        return [(x + t * half, y + inward * d * deep) for t, d in zip(ts, profile)]
    return [(x + inward * d * deep, y + t * half) for t, d in zip(ts, profile)]


def card_mask(size: tuple[int, int], plan: DefectPlan, mirror: bool) -> Image.Image:
    """The card's outline: factory-rounded corners, rounder where a corner is worn."""
    w, h = size
    mask = Image.new("L", size, 255)
    draw = ImageDraw.Draw(mask)
    radius = {(u, v): corner_radius(0.0) for u, v in _CORNERS}
    for u, v, sev in plan.corners:
        radius[(u, v)] = corner_radius(sev)
    for (u, v), r_frac in radius.items():
        r = r_frac * w
        x, y = _px(u, v, w, h, mirror)
        sx, sy = (1 if x < w / 2 else -1), (1 if y < h / 2 else -1)
        draw.rectangle((min(x, x + sx * r), min(y, y + sy * r), max(x, x + sx * r), max(y, y + sy * r)), fill=0)
        cx, cy = x + sx * r, y + sy * r
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    return mask


def draw_defects(card: Image.Image, plan: DefectPlan, side: str) -> None:
    """Draw the plan's damage onto one side (the back mirrored) of a card-sized canvas."""
    mirror = side == "back"
    w, h = card.size
    draw = ImageDraw.Draw(card, "RGBA")
    white = (*WHITE, int(255 * WHITENING_ALPHA[side]))
    for u, v, sev in plan.corners:
        # reaches past the worn (rounder) outline, so a white rim of this width shows inside it
        x, y = _px(u, v, w, h, mirror)
        r = (corner_radius(sev) + 0.015 + 0.06 * sev) * w
        draw.ellipse((x - r, y - r, x + r, y + r), fill=white)
    for u, v, r_frac in plan.specks:
        x, y, r = *_px(u, v, w, h, mirror), r_frac * w
        draw.ellipse((x - r, y - r, x + r, y + r), fill=white)
    for chip in plan.chips:
        draw.polygon(_chip_outline(chip, w, h, mirror), fill=white)
    for u0, v0, u1, v1, width in plan.wear:
        p0, p1 = _px(u0, v0, w, h, mirror), _px(min(u1, 1.0), min(v1, 1.0), w, h, mirror)
        draw.line([p0, p1], fill=white, width=max(2, round(width * w * 2)))
    _draw_surface(draw, plan, w, h, mirror, side)


def _draw_surface(draw: ImageDraw.ImageDraw, plan: DefectPlan, w: int, h: int, mirror: bool, side: str) -> None:
    thin = max(1, round(w * 0.006))
    for u0, v0, u1, v1, alpha in plan.scratches:
        a = int(255 * min(1.0, alpha) * SCRATCH_ALPHA[side])
        draw.line([_px(u0, v0, w, h, mirror), _px(u1, v1, w, h, mirror)], fill=(*WHITE, a), width=thin)
    if side == "front":  # print lines are an ink fault of the printed front
        for u0, v0, u1, v1 in plan.print_lines:
            draw.line([_px(u0, v0, w, h, mirror), _px(u1, v1, w, h, mirror)], fill=(235, 235, 255, 170),
                      width=thin)
    if plan.crease is not None:
        u0, v0, u1, v1, sev = plan.crease
        p0, p1 = _px(u0, v0, w, h, mirror), _px(u1, v1, w, h, mirror)
        # the fold catches the light on one flank and throws a soft shadow on the other
        shadow = max(2, round(w * (0.012 + 0.012 * sev)))
        off = shadow * 0.6
        draw.line([(p0[0] + off, p0[1] + off), (p1[0] + off, p1[1] + off)], fill=(20, 20, 30, int(70 + 80 * sev)),
                  width=shadow)
        draw.line([p0, p1], fill=(255, 255, 255, 215), width=max(2, shadow * 2 // 3))
