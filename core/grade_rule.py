"""From the model's outputs to a grade: the one rule behind validation, evaluation, prediction and serving.

Four choices, each measured on the local preset's val split (docs/design.md §11):
- Before anything is read, the logits take back what the imbalanced sampler did to the heads' prior: the
  model carries log(a grade's share among the training cards / its share among the sampler's draws) for the
  grade head and each sub-grade head (core.sampling.sampler_prior_shift), added here, never in the loss
  (Bayes' rule: a head trained on the draws says p_draws(grade | card)). Val within-one 95.3% -> 96.2% on
  average over training seeds 42, 43, 44, unseen cards +0.4 points on average over nine pairs.
- The grade distribution pools the grade head with the one the criterion heads imply. A PSA grade is the
  minimum of the four criterion caps (docs/design.md §2), so with sub-grades taken as independent,
  P(grade >= g) = prod over criteria of P(sub-grade >= g). The two distributions are combined as a weighted
  geometric mean (a log-linear pool) and renormalised; a model without criterion heads keeps its own.
- The grade is the distribution's expected value, rounded to the nearest grade (its median before, its
  most likely class before that). Grades are ordered and QWK, the measure this project is held to, weighs
  an error by its square: the expected value is the reading with the least expected squared error, and
  it leans toward a far grade only as much as that grade's probability says, where the median ignores
  how far the mass beyond it lies. Read both ways, the local preset's models (training seeds 42, 43, 44)
  had within-one on val 95.3 / 94.8 / 93.8% -> 96.8 / 95.3 / 93.8%, on the test cards +0.8 to +1.8
  points, on three unseen sets +0.6 on average (+0.3 to +1.5 with seeds 42 and 43, -1.0 to +0.2 with
  44), QWK within 0.01 either way, for exact accuracy 0.66 -> 0.59 on average: fewer cards read two or
  more grades off, more read one off (docs/design.md §11). Sub-grades are read the same way.
- A model that measures centering (`model.measure_centering`) has its centering sub-grade read from the
  four measured shares through PSA's bands (core/centering.py, read by `centering_distribution`), as a
  grader measures 60/40 and looks up the band, instead of from the criterion head: centering exact
  0.72 -> 0.93 on unseen cards (docs/design.md §12).
"""
from __future__ import annotations

import torch
from torch import Tensor

from core.centering import BACK_CENTERING_BANDS, FRONT_CENTERING_BANDS, at_least_limits

# Weight of the criterion-implied distribution in the pool (the grade head gets the rest). Chosen on the
# val split of the local preset: 0.7 -> val QWK 0.798, 0.5 -> 0.797, 1.0 (criteria alone) -> 0.794,
# 0 (grade head alone) -> 0.780 (docs/design.md §11).
CRITERIA_WEIGHT = 0.7
_TINY = 1e-12  # keeps log() finite where a pooled term is 0 (or a rounding error below it)
# Spread of a measured share around the truth when the centering sub-grade is read through the bands. Chosen
# on a measuring local-preset model's val split (QWK 0.882 / 0.884 / 0.884 / 0.877 at sd 0.005 / 0.01 /
# 0.015 / 0.03); the reader's mean error is about 0.01 (docs/design.md §12).
CENTERING_SHARE_SD = 0.01
CENTERING = 0  # index of centering in core.records.CRITERIA (a test checks)
# Per share (front lr, front tb, back lr, back tb) and grade g: the largest "larger share" still meeting g.
# Clamped to [-1, 2]: +-inf would make inf - inf = nan in centering_distribution; beyond [0, 1] is as good.
_SHARE_LIMITS = torch.tensor([at_least_limits(FRONT_CENTERING_BANDS)] * 2
                             + [at_least_limits(BACK_CENTERING_BANDS)] * 2).clamp(-1.0, 2.0)            # [4, 10]


def _distribution(at_least: Tensor) -> Tensor:
    """[B, K] P(grade >= g) -> [B, K] P(grade = g)."""
    above = torch.cat([at_least[:, 1:], torch.zeros_like(at_least[:, :1])], dim=1)
    return (at_least - above).clamp_min(0.0)


def criteria_implied(criteria_logits: Tensor) -> Tensor:
    """[B, C, K] sub-grade logits -> [B, K] distribution of their minimum, sub-grades taken as independent."""
    at_least = torch.softmax(criteria_logits.float(), dim=-1).flip(-1).cumsum(-1).flip(-1)  # P(sub >= g)
    return _distribution(at_least.prod(dim=1))                                                 # P(min >= g)


def centering_distribution(shares: Tensor, share_sd: float) -> Tensor:
    """[B, 4] measured shares (front lr, front tb, back lr, back tb) -> [B, 10] distribution of PSA's
    centering cap (core/centering.py), each share taken as Gaussian around its measurement with sd
    `share_sd` and the four read independently.

    A share s meets "larger share <= L" when 1 - L <= s <= L, so P(cap of that share >= g) is the normal
    mass between 1 - L_g and L_g; the cap is the lowest of the four, so P(cap >= g) is their product.
    """
    s = shares.float().unsqueeze(-1)                                                           # [B, 4, 1]
    limits = _SHARE_LIMITS.to(shares.device)
    at_least = torch.special.ndtr((limits - s) / share_sd) - torch.special.ndtr((1.0 - limits - s) / share_sd)
    at_least = at_least.clamp(0.0, 1.0).prod(dim=1)                                            # [B, 10]
    at_least[:, 0] = 1.0  # every card meets the lowest grade
    return _distribution(at_least)


def grade_probabilities(logits: Tensor, criteria_logits: Tensor | None = None) -> Tensor:
    """[B, K] grade distribution: the grade head's softmax, pooled with the criterion heads' when given."""
    own = torch.log_softmax(logits.float(), dim=-1)
    if criteria_logits is None:
        return own.exp()
    implied = criteria_implied(criteria_logits).clamp_min(_TINY).log()
    return torch.softmax((1.0 - CRITERIA_WEIGHT) * own + CRITERIA_WEIGHT * implied, dim=-1)


def expected_index(probs: Tensor) -> Tensor:
    """The distribution's mean class index along the last axis: [..., K] probabilities -> [...] floats."""
    index = torch.arange(probs.shape[-1], device=probs.device, dtype=torch.float32)
    return (probs.float() * index).sum(-1)


def nearest_class(mean_index: Tensor, num_classes: int) -> Tensor:
    """The class index nearest a mean index (halfway between two reads as the higher one), in 0..K-1."""
    return torch.floor(mean_index + 0.5).long().clamp(0, num_classes - 1)


def expected_class(probs: Tensor) -> Tensor:
    """Index of the class nearest the distribution's mean along the last axis: [..., K] -> [...]."""
    return nearest_class(expected_index(probs), probs.shape[-1])


def grade_logits(outputs: dict) -> Tensor:
    """A DualBranchGrader's grade logits [B, K] as every reader should see them: the grade head's, with the
    sampler's prior taken back ("grade_prior_shift"; absent or zero for a model trained without it)."""
    logits = outputs["logits"]
    shift = outputs.get("grade_prior_shift")
    return logits if shift is None else logits.float() + shift.float()


def criteria_logits(outputs: dict) -> Tensor | None:
    """A DualBranchGrader's sub-grade logits [B, 4, K] as every reader should see them: the criterion heads'
    with the sampler's prior taken back ("criteria_prior_shift"), and with measured centering
    ("centering_measured") the centering row replaced by the log of the band distribution of the four
    measured shares (a measurement, trained on no draw: no prior to take back). None for a model without
    criterion heads."""
    logits = outputs.get("criteria")
    if logits is None:
        return None
    shift = outputs.get("criteria_prior_shift")
    if shift is not None:
        logits = logits.float() + shift.float()
    if not outputs.get("centering_measured", False):
        return logits
    measured = centering_distribution(outputs["centering"], CENTERING_SHARE_SD).clamp_min(_TINY).log()
    return torch.cat([measured.unsqueeze(1).to(logits.dtype), logits[:, CENTERING + 1:]], dim=1)


def subgrade_probabilities(criteria_logits: Tensor) -> Tensor:
    """[B, C, K] sub-grade distributions from sub-grade logits (criteria_logits' reading)."""
    return torch.softmax(criteria_logits.float(), dim=-1)


def predicted_grades(outputs: dict) -> Tensor:
    """Class indices (grade - 1) [B] from one read's forward outputs (core/reads.py pools several)."""
    return expected_class(grade_probabilities(grade_logits(outputs), criteria_logits(outputs)))


def predicted_subgrades(criteria_logits: Tensor) -> Tensor:
    """Class indices (sub-grade - 1) [B, C] from sub-grade logits [B, C, K]."""
    return expected_class(subgrade_probabilities(criteria_logits))
