"""Reading a card more than once (`model.reads`): the same scans moved by a pixel between reads, the grade
read from the mean of the reads' distributions (docs/design.md §11).

Why: a scratch or a chip is a line a pixel or two wide, and where it falls on the pixel grid decides how
much of it survives the whole-card resize, the detail map's pooling and the crops' convolutions. Moved by
one pixel, the same scan reads differently: on the 1,920 unseen cards of seed 7, the local preset's model
read once from each of five positions was two or more grades off on 91 - 98 cards; the mean of the five
distributions on 86 (docs/results.md). A grader tilts the card under the lamp for the same reason. Training
is unchanged: reads are a way of reading a trained model, recorded in its export so that evaluation,
prediction and serving read it alike, and each can ask for fewer (`--reads 1` reads each card once).
"""
from __future__ import annotations

from typing import Sequence

import torch

from core.grade_rule import criteria_logits, grade_logits, grade_probabilities, subgrade_probabilities

# (dx, dy) in pixels of the scan, right and down; `reads` = n takes the first n. The scan as it is comes
# first, so one read is exactly the single read every model had before reads existed.
READ_SHIFTS = ((0, 0), (1, 0), (0, 1), (1, 1), (-1, -1), (-1, 0), (0, -1), (1, -1), (-1, 1))
MAX_READS = len(READ_SHIFTS)


class ReadsError(ValueError):
    """A number of reads out of range; the message names where it came from."""


def read_shifts(reads: int, where: str = "reads") -> tuple[tuple[int, int], ...]:
    """The scan moves of `reads` reads (READ_SHIFTS' first `reads`); `where` names the setting in the error."""
    if isinstance(reads, bool) or not isinstance(reads, int) or not 1 <= reads <= MAX_READS:
        raise ReadsError(f"{where} = {reads!r}: expected a whole number from 1 to {MAX_READS}")
    return READ_SHIFTS[:reads]


def reads_of(config: dict, override: int | None = None) -> int:
    """How many reads an exported model's config asks for (1 for one exported before reads existed), or
    `override` when given (a command line's --reads); ReadsError if it is not 1 - MAX_READS."""
    if override is not None:
        read_shifts(override, "--reads")
        return override
    reads = config.get("reads", 1)
    read_shifts(reads, "reads in the model's config")
    return reads


def pooled_reading(outputs: Sequence[dict]) -> dict:
    """Forward outputs of the same cards, one per read -> the means over reads of what a reader reads:
    {"grade": [B, K] grade distribution (core.grade_rule.grade_probabilities), "criteria": [B, 4, K]
    sub-grade distributions (None without criterion heads), "edge": [B], "centering": [B, 4]}, as float32.
    One read gives that read's own values, exactly."""
    readings = [_reading(o) for o in outputs]
    if len(readings) == 1:
        return readings[0]
    return {k: None if readings[0][k] is None else torch.stack([r[k] for r in readings]).mean(0)
            for k in readings[0]}


# Outputs that belong to the model, not to a card (core/model.py): the same for every read.
_PER_MODEL = ("grade_prior_shift", "criteria_prior_shift")


def split_reads(outputs: dict, reads: int) -> list[dict]:
    """Forward outputs over cards' reads in card-major rows (card 0's reads, then card 1's, ...: row
    i x reads + r is read r of card i) -> one outputs dict per read, for pooled_reading."""
    return [{k: v[r::reads] if torch.is_tensor(v) and k not in _PER_MODEL else v for k, v in outputs.items()}
            for r in range(reads)]


def _reading(outputs: dict) -> dict:
    sub = criteria_logits(outputs)
    return {"grade": grade_probabilities(grade_logits(outputs), sub),
            "criteria": None if sub is None else subgrade_probabilities(sub),
            "edge": outputs["edge"].float(), "centering": outputs["centering"].float()}
