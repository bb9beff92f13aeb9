"""The cyclic garbage collector, paused while the cockpit starts.

Start-up imports Textual and builds a few hundred widgets and their styles, all of which live as long as
the app, and the collector kept walking them while they were made: about a fifth of the time to the first
paint (benchmarks/tui_bench.py). `psa-cockpit` pauses it before importing the TUI; the app pauses it on
load if nobody did (tests, embedding) and resumes it when the preset form reports it is complete, or when it ends.
Imports nothing, so the CLI can call it before Textual is loaded.
"""
from __future__ import annotations

import gc

_paused = False


def pause_gc() -> None:
    """Pause the collector unless it is already off (then it is left alone, and not turned on later)."""
    global _paused
    if not _paused and gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """Turn the collector back on if pause_gc turned it off; harmless to call more than once."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
