"""Bring your own cards: build, check and describe `splits.json` (docs/design.md §1) from a user's scans.

CLI: `python -m core.splits build|check|stats ...` (see docs/bring_your_own_cards.md).
The functions below are what the cockpit calls; none of them imports anything outside core.
"""
from core.splits.build import build_splits
from core.splits.raw import SplitsInputError
from core.splits.report import check_splits, render_checks, splits_report, splits_stats, write_report
from core.splits.sources import Columns
from core.splits.stats import render_stats, sampler_class_weights

__all__ = [
    "Columns", "SplitsInputError", "build_splits", "check_splits", "render_checks", "render_stats",
    "sampler_class_weights", "splits_report", "splits_stats", "write_report",
]
