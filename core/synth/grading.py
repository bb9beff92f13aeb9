"""PSA grading rules of docs/design.md §2 as pure functions: what is drawn on a card -> its grade.

The grade is the minimum of four caps (centering, corners, edges, surface incl. creases), so the label
is a deterministic function of the card's drawn attributes and a model can, in principle, learn it
exactly. Everything here is plain arithmetic: no randomness, no images.
"""
from __future__ import annotations

from dataclasses import dataclass

# Centering: (grade cap, largest allowed "larger share" of the two borders), best cap first.
# 60/40 means the larger border holds 60 % of left+right (or top+bottom). Grade 4 shares 85/15 with 5,
# and 2 shares 90/10 with 3, so a card that meets 85/15 gets 5 and one that meets only 90/10 gets 3.
FRONT_CENTERING_BANDS: tuple[tuple[int, float], ...] = (
    (10, 0.55), (9, 0.60), (8, 0.65), (7, 0.70), (6, 0.80), (5, 0.85), (3, 0.90),
)
BACK_CENTERING_BANDS: tuple[tuple[int, float], ...] = ((10, 0.75), (9, 0.90))
# Worse than 90/10 meets no band at all: the lowest grade.
OFF_BAND_CAP = 1

# Defect severity in [0, 1] -> cap: (grade cap, largest severity allowed). 0 is pristine.
SEVERITY_BANDS: tuple[tuple[int, float], ...] = (
    (10, 0.05), (9, 0.15), (8, 0.25), (7, 0.35), (6, 0.45), (5, 0.55), (4, 0.65), (3, 0.75),
    (2, 0.87), (1, 1.0),
)
# A crease of any size caps the card at 5 ("about 5 or below"); deeper creases go lower.
CREASE_MAX_CAP = 5

# Shares computed from pixel borders are ratios like 33/60; a hair of tolerance keeps a share of
# exactly 0.45 (whose complement is 0.5500000000000001 in floating point) inside the 55/45 band.
_EPS = 1e-9


@dataclass(frozen=True)
class CardAttributes:
    """Everything about a card that sets its grade.

    Centering values are the share of the left border in left+right (`*_lr`) and of the top border in
    top+bottom (`*_tb`), as in splits.json; severities are in [0, 1], 0 = pristine, and `crease` 0
    means no crease.
    """
    front_lr: float
    front_tb: float
    back_lr: float
    back_tb: float
    corners: float = 0.0
    edges: float = 0.0
    surface: float = 0.0
    crease: float = 0.0

    @property
    def edge_label(self) -> float:
        """splits.json `edge`: overall edge/corner damage, the worse of the two."""
        return max(self.corners, self.edges)


def larger_share(share: float) -> float:
    """0.4 and 0.6 are both a 60/40 split."""
    return max(share, 1.0 - share)


def _band_cap(share: float, bands: tuple[tuple[int, float], ...]) -> int:
    worst = larger_share(share)
    for cap, limit in bands:
        if worst <= limit + _EPS:
            return cap
    return OFF_BAND_CAP


def front_centering_cap(lr: float, tb: float) -> int:
    """The worse of the left/right and top/bottom ratios counts."""
    return min(_band_cap(lr, FRONT_CENTERING_BANDS), _band_cap(tb, FRONT_CENTERING_BANDS))


def back_centering_cap(lr: float, tb: float) -> int:
    return min(_band_cap(lr, BACK_CENTERING_BANDS), _band_cap(tb, BACK_CENTERING_BANDS))


def centering_cap(front_lr: float, front_tb: float, back_lr: float, back_tb: float) -> int:
    """PSA's centering cap: the worse of the front's and the back's."""
    return min(front_centering_cap(front_lr, front_tb), back_centering_cap(back_lr, back_tb))


def severity_cap(severity: float) -> int:
    for cap, limit in SEVERITY_BANDS:
        if severity <= limit + _EPS:
            return cap
    return 1


def crease_cap(severity: float) -> int:
    if severity <= 0.0:
        return 10
    return min(CREASE_MAX_CAP, severity_cap(severity))


def caps(attrs: CardAttributes) -> dict[str, int]:
    """Each criterion's cap; the grade is their minimum."""
    return {
        "centering": centering_cap(attrs.front_lr, attrs.front_tb, attrs.back_lr, attrs.back_tb),
        "corners": severity_cap(attrs.corners),
        "edges": severity_cap(attrs.edges),
        "surface": min(severity_cap(attrs.surface), crease_cap(attrs.crease)),
    }


def grade_from_attributes(attrs: CardAttributes) -> int:
    return min(caps(attrs).values())


def band_limits(cap: int, bands: tuple[tuple[int, float], ...], lowest: float) -> tuple[float, float] | None:
    """(lower, upper] of the value range that gives exactly `cap`, or None if no value does.

    `lowest` is where the best band starts (0.5 for shares, 0.0 for severities).
    """
    lower = lowest
    for band_cap, limit in bands:
        if band_cap == cap:
            return lower, limit
        lower = limit
    return None
