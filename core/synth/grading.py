"""PSA grading rules of docs/design.md §2 as pure functions: what is drawn on a card -> its grade.

The grade is the minimum of four caps (centering, corners, edges, surface incl. creases), so the label
is a deterministic function of the card's drawn attributes and a model can, in principle, learn it
exactly. Everything here is plain arithmetic: no randomness, no images.
"""
from __future__ import annotations

from dataclasses import dataclass

# PSA's centering bands live in core/centering.py: the grader reads measured shares through the same table.
from core.centering import centering_cap

# Defect severity in [0, 1] -> cap: (grade cap, largest severity allowed). 0 is pristine.
SEVERITY_BANDS: tuple[tuple[int, float], ...] = (
    (10, 0.05), (9, 0.15), (8, 0.25), (7, 0.35), (6, 0.45), (5, 0.55), (4, 0.65), (3, 0.75),
    (2, 0.87), (1, 1.0),
)
# A crease of any size caps the card at 5 ("about 5 or below"); deeper creases go lower.
CREASE_MAX_CAP = 5

# A hair of tolerance, as for the centering shares (core/centering.py): a severity of exactly 0.15 is a 9.
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
