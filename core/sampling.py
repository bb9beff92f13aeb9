"""Which cards a rank sees in an epoch: plain functions of (seed, epoch, rank) -> index list.

Nothing here has state, so nothing here is checkpointed: a run resumed mid-epoch calls the same
function with the same arguments, gets the same list and skips the batches it already trained on.
Every rank computes the same global order and keeps positions rank, rank + world_size, ...; the ranks
together therefore see exactly one epoch, and world_size 1 is the plain single-process order.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch
from torch.utils.data import Sampler

from core.config import ConfigError


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} / world_size {world_size}: expected 0 <= rank < world_size")


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed + epoch)


def grade_weights(grades: Sequence[int], power: float = 0.5) -> list[float]:
    """Per-record weight 1/freq(grade)^power: a record of a rare grade is drawn more often, so with
    power 0.5 each grade's share of draws is proportional to sqrt(its count) (docs/design.md §3)."""
    counts = Counter(grades)
    return [1.0 / counts[g] ** power for g in grades]


def sampler_prior_shift(grades: Sequence[int], subgrades: Sequence[Sequence[int | None] | None], power: float,
                        num_grades: int = 10, num_criteria: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """What the grade-balanced draw did to the model's prior, to be taken back when its outputs are read:
    ([num_grades] for the grade head, [num_criteria, num_grades] for the sub-grade heads) of
    log(share of the label among the training cards / its share among the draws).

    A head trained on draws where rare grades come up more often learns those grades' inflated share as
    its prior, and reads a card it is unsure of as worse than it is (docs/design.md §11). Adding the log of
    that ratio to its logits turns p_draws(y | x) back into p_cards(y | x) by Bayes' rule ("logit
    adjustment", Menon et al. 2021): exact for the grade, which the draw weighs by, and the first-order
    correction for a sub-grade, whose share among the draws shifts through the grades it goes with.
    Labels no training card has, and sub-grades no card is labelled with, get 0: nothing to take back.
    Grades and sub-grades are 1..num_grades.
    """
    weights = torch.tensor(grade_weights(grades, power), dtype=torch.float64)

    def shift(labels: Sequence[int | None]) -> torch.Tensor:
        labelled = torch.tensor([label is not None for label in labels], dtype=torch.bool)
        if not labelled.any():
            return torch.zeros(num_grades)
        index = torch.tensor([label - 1 for label in labels if label is not None])
        natural = torch.bincount(index, minlength=num_grades).double()
        drawn = torch.bincount(index, weights=weights[labelled], minlength=num_grades)
        ratio = (natural / natural.sum()) / (drawn / drawn.sum()).clamp_min(1e-300)
        return torch.where(natural > 0, ratio.log(), torch.zeros_like(ratio)).float()

    per_criterion = [shift([None if sub is None else sub[c] for sub in subgrades]) for c in range(num_criteria)]
    return shift(list(grades)), torch.stack(per_criterion)


def weighted_indices(weights: Sequence[float], seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                     num_samples: int | None = None, replacement: bool = True) -> list[int]:
    """This rank's `num_samples` (default len(weights) // world_size) of one global weighted draw of
    num_samples * world_size indices (torch.multinomial seeded with seed + epoch)."""
    _check_rank(rank, world_size)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.ndim != 1 or len(w) == 0:
        raise ValueError("weights: expected a non-empty list of numbers")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights: expected finite, non-negative numbers with a positive sum")
    n = len(w) // world_size if num_samples is None else num_samples
    if n < 1:
        raise ValueError(f"num_samples {n}: expected at least 1")
    if not replacement and n * world_size > int((w > 0).sum()):
        raise ValueError(f"num_samples {n} x world_size {world_size} exceeds the "
                         f"{int((w > 0).sum())} records with weight > 0 (replacement=False)")
    draw = torch.multinomial(w, n * world_size, replacement, generator=_generator(seed, epoch))
    return draw[rank::world_size].tolist()


def shuffled_indices(num_items: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's share of one permutation of range(num_items) (seeded with seed + epoch). No padding:
    ranks may get one item fewer, so nothing is counted twice."""
    _check_rank(rank, world_size)
    if num_items < 0:
        raise ValueError(f"num_items {num_items}: expected >= 0")
    return torch.randperm(num_items, generator=_generator(seed, epoch))[rank::world_size].tolist()


def epoch_indices(grades: Sequence[int], seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                  sampler_power: float | None = 0.5) -> list[int]:
    """This rank's training order for an epoch: a grade-balanced weighted draw (weights
    1/freq^sampler_power), or a plain shuffle when sampler_power is None."""
    if sampler_power is None:
        return shuffled_indices(len(grades), seed, epoch, rank, world_size)
    return weighted_indices(grade_weights(grades, sampler_power), seed, epoch, rank, world_size)


def steps_per_epoch(n_records: int, world_size: int, t) -> int:
    """Optimizer steps per epoch on each rank for the preset's [training] table `t` (full batches only)."""
    steps = n_records // world_size // t.batch_size // t.grad_accum_steps
    if steps == 0:
        raise ConfigError(f"training.batch_size x grad_accum_steps x world size = "
                          f"{t.batch_size * t.grad_accum_steps * world_size} exceeds the "
                          f"{n_records} training cards: lower training.batch_size")
    return min(steps, t.max_steps_per_epoch) if t.max_steps_per_epoch else steps


def shard_indices(num_items: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's share of range(num_items) in order (evaluation: confusion matrices are summed across
    ranks, so every item is counted exactly once)."""
    _check_rank(rank, world_size)
    return list(range(rank, num_items, world_size))


class EpochOrder(Sampler):
    """The index list a DataLoader iterates; the trainer sets `indices` before each epoch, so one loader
    (and its persistent workers) serves a whole phase."""

    def __init__(self, indices: list[int] | None = None):
        self.indices: list[int] = list(indices or [])

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def eval_indices(n: int, seed: int, rank: int, world_size: int, limit: int = 0) -> list[int]:
    """This rank's part of an evaluation split: its whole shard, or with `limit` the first `limit` of a
    fixed shuffle (the clean batches BatchNorm statistics are recomputed on)."""
    if limit:
        return shuffled_indices(n, seed, 0, rank, world_size)[:limit]
    return shard_indices(n, rank, world_size)
