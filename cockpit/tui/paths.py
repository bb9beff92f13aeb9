"""Paths as the TUI shows them: relative to the working directory when under it (shorter, and the same
on every machine, which keeps snapshot tests stable)."""
from __future__ import annotations

import os
from pathlib import Path


def show_path(path: str | os.PathLike) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def short_paths(message: str) -> str:
    """Engine messages name files by absolute path; shorten those under the working directory."""
    return message.replace(str(Path.cwd().resolve()) + os.sep, "")
