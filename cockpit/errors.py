"""Errors and exit codes shared by every cockpit command (headless CLI, TUI, local and cloud backends).

A `CockpitError` carries a one-line message (what went wrong, naming the file/key/value, and what to do)
and the process exit code the headless CLI returns for it. The TUI shows the same message in a dialog.
"""
from __future__ import annotations

EXIT_OK = 0          # job succeeded / command done
EXIT_FAILED = 1      # the training job failed
EXIT_USAGE = 2       # bad input: preset, override, argument
EXIT_CANCELLED = 3   # the job was cancelled
EXIT_SUBMIT = 4      # submit or API error
EXIT_BUILD = 5       # docker image build or push error
EXIT_COST = 6        # estimate over cloud.max_cost_usd without --yes
EXIT_AUTH = 7        # no credentials found
EXIT_MONITOR = 8     # lost contact with a job while following it: its state is unknown (it may still run)
EXIT_INTERRUPTED = 130  # Ctrl-C: we say where things stand (job created or not, how to follow or cancel)


class CockpitError(Exception):
    """A user-facing failure: one-line message plus the CLI exit code (EXIT_USAGE unless given)."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


def exit_code_for_state(state: str) -> int:
    """A job state (cockpit.backend.JobState; local runs use the same names) -> the CLI exit code."""
    from cockpit.backend import JobState

    if state == JobState.SUCCEEDED:
        return EXIT_OK
    if state in (JobState.CANCELLED, JobState.CANCELLING):
        return EXIT_CANCELLED
    return EXIT_FAILED
