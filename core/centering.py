"""PSA's centering bands (docs/design.md §2): border shares -> a centering cap.

One table for both sides of the product: the synthetic generator labels cards with it
(core/synth/grading.py), and a grader that measures the four shares reads its centering sub-grade through
it (core/grade_rule.py, `model.measure_centering`), as a human grader measures 60/40 and looks the band up.
Shares are the left border's share of left+right (`lr`) and the top border's of top+bottom (`tb`), as in
splits.json; 0.4 and 0.6 are both a 60/40 split.
"""
from __future__ import annotations

# (grade cap, largest allowed "larger share" of the two borders), best cap first. Grade 4 shares 85/15
# with 5, and 2 shares 90/10 with 3, so a card that meets 85/15 gets 5 and one that meets only 90/10 gets 3.
FRONT_CENTERING_BANDS: tuple[tuple[int, float], ...] = (
    (10, 0.55), (9, 0.60), (8, 0.65), (7, 0.70), (6, 0.80), (5, 0.85), (3, 0.90),
)
BACK_CENTERING_BANDS: tuple[tuple[int, float], ...] = ((10, 0.75), (9, 0.90))
# Worse than 90/10 meets no band at all: the lowest grade.
OFF_BAND_CAP = 1

# Shares computed from pixel borders are ratios like 33/60; a hair of tolerance keeps a share of
# exactly 0.45 (whose complement is 0.5500000000000001 in floating point) inside the 55/45 band.
_EPS = 1e-9


def larger_share(share: float) -> float:
    """0.4 and 0.6 are both a 60/40 split."""
    return max(share, 1.0 - share)


def band_cap(share: float, bands: tuple[tuple[int, float], ...]) -> int:
    worst = larger_share(share)
    for cap, limit in bands:
        if worst <= limit + _EPS:
            return cap
    return OFF_BAND_CAP


def front_centering_cap(lr: float, tb: float) -> int:
    """The worse of the left/right and top/bottom ratios counts."""
    return min(band_cap(lr, FRONT_CENTERING_BANDS), band_cap(tb, FRONT_CENTERING_BANDS))


def back_centering_cap(lr: float, tb: float) -> int:
    return min(band_cap(lr, BACK_CENTERING_BANDS), band_cap(tb, BACK_CENTERING_BANDS))


def centering_cap(front_lr: float, front_tb: float, back_lr: float, back_tb: float) -> int:
    """PSA's centering cap: the worse of the front's and the back's."""
    return min(front_centering_cap(front_lr, front_tb), back_centering_cap(back_lr, back_tb))


def at_least_limits(bands: tuple[tuple[int, float], ...], num_grades: int = 10) -> list[float]:
    """For grades g = 1..num_grades: the largest "larger share" whose cap is still >= g (inf for the lowest
    grade, which every share meets; -inf where no share does)."""
    return [float("inf") if g <= OFF_BAND_CAP
            else max((limit for cap, limit in bands if cap >= g), default=float("-inf"))
            for g in range(1, num_grades + 1)]
