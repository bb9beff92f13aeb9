"""PSA's centering bands (docs/design.md §2): border shares -> a centering cap, exact or as a distribution.

One table for both sides of the product: the synthetic generator labels cards with it
(core/synth/grading.py), and a grader that measures the four shares reads its centering sub-grade through
it (core/grade_rule.py, `model.measure_centering`), as a human grader measures 60/40 and looks the band up.
Shares are the left border's share of left+right (`lr`) and the top border's of top+bottom (`tb`), as in
splits.json; 0.4 and 0.6 are both a 60/40 split.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the synthetic generator needs only the table
    from torch import Tensor

# (grade cap, largest allowed "larger share" of the two borders), best cap first. Grade 4 shares 85/15
# with 5, and 2 shares 90/10 with 3, so a card that meets 85/15 gets 5 and one that meets only 90/10 gets 3.
FRONT_CENTERING_BANDS: tuple[tuple[int, float], ...] = (
    (10, 0.55), (9, 0.60), (8, 0.65), (7, 0.70), (6, 0.80), (5, 0.85), (3, 0.90),
)
BACK_CENTERING_BANDS: tuple[tuple[int, float], ...] = ((10, 0.75), (9, 0.90))
# Worse than 90/10 meets no band at all: the lowest grade.
OFF_BAND_CAP = 1
NUM_GRADES = 10

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


def _at_least_limits(bands: tuple[tuple[int, float], ...]) -> list[float]:
    """For grades g = 1..10: the largest "larger share" whose cap is still >= g (inf for g = 1: every
    share meets the lowest grade; -inf where no share does)."""
    limits = []
    for g in range(1, NUM_GRADES + 1):
        meeting = [limit for cap, limit in bands if cap >= g]
        limits.append(float("inf") if g <= OFF_BAND_CAP else max(meeting, default=float("-inf")))
    return limits


def centering_distribution(shares: Tensor, share_sd: float) -> Tensor:
    """[B, 4] measured shares (front lr, front tb, back lr, back tb) -> [B, 10] distribution of the
    centering cap (grades 1..10), each share taken as Gaussian around its measurement with sd `share_sd`
    and the four read independently.

    A share s meets "larger share <= L" when 1 - L <= s <= L, so P(cap of that share >= g) is the normal
    mass between 1 - L_g and L_g; the cap is the lowest of the four, so P(cap >= g) is their product.
    """
    import torch

    normal = torch.distributions.Normal(0.0, 1.0)
    s = shares.float().unsqueeze(-1)                                                    # [B, 4, 1]
    limits = torch.tensor([_at_least_limits(FRONT_CENTERING_BANDS)] * 2 + [_at_least_limits(BACK_CENTERING_BANDS)] * 2,
                          device=shares.device)                                          # [4, 10]
    finite = limits.clamp(-1.0, 2.0)  # inf would make inf - inf = nan below; beyond [0, 1] is as good
    at_least = normal.cdf((finite - s) / share_sd) - normal.cdf((1.0 - finite - s) / share_sd)
    at_least = at_least.clamp(0.0, 1.0).prod(dim=1)                                     # [B, 10]
    at_least[:, 0] = 1.0  # every card meets grade 1
    above = torch.cat([at_least[:, 1:], torch.zeros_like(at_least[:, :1])], dim=1)
    return (at_least - above).clamp_min(0.0)
