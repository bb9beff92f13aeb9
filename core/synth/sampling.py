"""Drawing a card's attributes and splitting the set: the random half of the generator.

A card starts from a target grade drawn from a histogram skewed like real PSA submissions; one
attribute (the "driver") is placed inside the band that caps the card at exactly that grade and every
other attribute at or above it. The label is still recomputed from what ends up drawn (see
`grading.grade_from_attributes`), so it never depends on this file's intentions.
"""
from __future__ import annotations

import numpy as np

from core.centering import BACK_CENTERING_BANDS, FRONT_CENTERING_BANDS
from core.synth.grading import SEVERITY_BANDS, CardAttributes, band_limits

# Share of each grade among generated cards, grade 1..10 (sums to 1): many 8-10, few 1-4.
GRADE_WEIGHTS = np.array([0.02, 0.03, 0.03, 0.04, 0.06, 0.08, 0.12, 0.22, 0.25, 0.15])

# How often each attribute is the one that sets the grade (when it can reach that grade at all).
DRIVER_WEIGHTS = {"front_centering": 1.0, "back_centering": 0.6, "corners": 1.0, "edges": 1.2,
                  "surface": 0.8, "crease": 1.5}
# Non-driving attributes sit at or above the grade, mostly pristine: weight of cap c is DECAY**(10-c).
DECAY = 0.3
# Beyond 90/10 is drawn no further than this, so the smaller border never vanishes.
MAX_SHARE = 0.94


def _interior(rng: np.random.Generator, lower: float, upper: float) -> float:
    """A value well inside (lower, upper]: pixel rounding rarely pushes it into a neighbouring band."""
    width = upper - lower
    return float(rng.uniform(lower + 0.2 * width, upper - 0.15 * width))


def _share_range(cap: int, bands) -> tuple[float, float] | None:
    if cap == 1 and band_limits(1, bands, 0.5) is None:
        return bands[-1][1], MAX_SHARE
    return band_limits(cap, bands, 0.5)


def _can_reach(attr: str, cap: int) -> bool:
    if attr == "front_centering":
        return _share_range(cap, FRONT_CENTERING_BANDS) is not None
    if attr == "back_centering":
        return _share_range(cap, BACK_CENTERING_BANDS) is not None
    if attr == "crease":
        return cap <= 5 or cap == 10  # no crease, or one that caps at 5 or below
    return True


def _cap_at_or_above(rng: np.random.Generator, grade: int, attr: str) -> int:
    options = [c for c in range(grade, 11) if _can_reach(attr, c)]
    weights = np.array([DECAY ** (10 - c) for c in options])
    return int(rng.choice(options, p=weights / weights.sum()))


def _severity_for(rng: np.random.Generator, cap: int, attr: str) -> float:
    if cap == 10:
        return 0.0  # pristine: nothing drawn
    if attr == "crease" and cap == 5:
        return _interior(rng, 0.25, 0.55)  # any crease caps at 5; its band starts at "just visible"
    lower, upper = band_limits(cap, SEVERITY_BANDS, 0.0)
    return _interior(rng, lower, upper)


def _centering_for(rng: np.random.Generator, cap: int, bands) -> tuple[float, float]:
    """(lr, tb) whose worse axis lies in the band of `cap`; the other axis is no worse."""
    lower, upper = _share_range(cap, bands)
    # The best band starts at perfect centering, which is fine to draw; others keep off their edges.
    worst = float(rng.uniform(0.5, upper - 0.15 * (upper - lower))) if cap == 10 \
        else _interior(rng, lower, upper)
    other = float(rng.uniform(0.5, worst))
    shares = [worst if rng.random() < 0.5 else 1.0 - worst, other if rng.random() < 0.5 else 1.0 - other]
    if rng.random() < 0.5:
        shares.reverse()
    return shares[0], shares[1]


def draw_target_grade(rng: np.random.Generator) -> int:
    return int(rng.choice(np.arange(1, 11), p=GRADE_WEIGHTS))


def sample_attributes(rng: np.random.Generator, grade: int) -> CardAttributes:
    """Attributes whose worst cap is `grade` (before pixel rounding)."""
    names = list(DRIVER_WEIGHTS)
    candidates = [a for a in names if _can_reach(a, grade)]
    weights = np.array([DRIVER_WEIGHTS[a] for a in candidates])
    driver = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))] if grade < 10 else None
    cap_of = {a: grade if a == driver else _cap_at_or_above(rng, grade, a) for a in names}
    front = _centering_for(rng, cap_of["front_centering"], FRONT_CENTERING_BANDS)
    back = _centering_for(rng, cap_of["back_centering"], BACK_CENTERING_BANDS)
    return CardAttributes(
        front_lr=front[0], front_tb=front[1], back_lr=back[0], back_tb=back[1],
        corners=_severity_for(rng, cap_of["corners"], "corners"),
        edges=_severity_for(rng, cap_of["edges"], "edges"),
        surface=_severity_for(rng, cap_of["surface"], "surface"),
        crease=_severity_for(rng, cap_of["crease"], "crease"),
    )


def _quota(rng: np.random.Generator, counts: dict[int, int], total: int) -> dict[int, int]:
    """Split `total` across strata in proportion to `counts` (largest remainder, seeded ties)."""
    n = sum(counts.values())
    exact = {g: total * c / n for g, c in counts.items()}
    quota = {g: int(v) for g, v in exact.items()}
    jitter = {g: rng.random() for g in counts}
    order = sorted(counts, key=lambda g: (-(exact[g] - quota[g]), jitter[g]))
    for g in order[: total - sum(quota.values())]:
        quota[g] += 1
    return quota


def stratified_split(rng: np.random.Generator, grades: list[int], val_frac: float,
                     test_frac: float) -> dict[str, list[int]]:
    """Card indices per split, stratified by grade; val and test get at least one card each if asked."""
    n = len(grades)
    n_val = max(1, round(n * val_frac)) if val_frac > 0 else 0
    n_test = max(1, round(n * test_frac)) if test_frac > 0 else 0
    by_grade: dict[int, list[int]] = {}
    for i, g in enumerate(grades):
        by_grade.setdefault(g, []).append(i)
    for members in by_grade.values():
        rng.shuffle(members)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for name, size in (("val", n_val), ("test", n_test)):
        quota = _quota(rng, {g: len(m) for g, m in by_grade.items() if m}, size)
        for g, k in quota.items():
            out[name].extend(by_grade[g][:k])
            by_grade[g] = by_grade[g][k:]
    out["train"] = [i for members in by_grade.values() for i in members]
    return {name: sorted(idx) for name, idx in out.items()}
