"""Issue 12 in the TUI: a failed save is a dialog with the edits kept, a file changed on disk asks before
it is overwritten, and `r` pressed twice starts one local run. The decisions live in cockpit.presets
(PresetDocument.save / ChangedOnDisk); the screens only show them."""
from __future__ import annotations

import errno
import time

import pytest
from textual.widgets import Input

from cockpit import presets as presets_service
from cockpit.local_runs import LocalBackend
from cockpit.tui.app import CockpitApp
from cockpit.tui.dialogs import ConfirmDialog, ErrorDialog
from tests.test_tui import SIZE, fake_backends, ready, show_form_section, wait_for, workdir  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


async def test_a_failed_save_is_a_dialog_and_keeps_the_edits(workdir, monkeypatch):
    app = CockpitApp("presets/local.toml")
    before = (workdir / "presets/local.toml").read_text()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "64"
        await pilot.pause()
        monkeypatch.setattr(presets_service, "write_bytes_atomic", _disk_full)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "No space left on device" in app.screen.message and "local.toml" in app.screen.message
        assert app.doc.dirty and app.doc.get("training", "batch_size") == 64
    assert (workdir / "presets/local.toml").read_text() == before


async def test_saving_a_file_changed_on_disk_asks_first(workdir):
    app = CockpitApp("presets/local.toml")
    path = workdir / "presets/local.toml"
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "64"
        await pilot.pause()
        path.write_text(path.read_text() + "# edited in another editor\n")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "changed on disk" in app.screen.question
        assert path.read_text().endswith("# edited in another editor\n")  # nothing written yet
        assert app.doc.dirty


class _SlowToStart(LocalBackend):
    """A local backend whose start takes a moment, as a real one does on a busy machine."""

    submits = 0

    def submit(self, *args, **kwargs):
        type(self).submits += 1
        time.sleep(0.5)
        return super().submit(*args, **kwargs)


async def test_r_pressed_twice_starts_one_local_run(workdir):
    backends = fake_backends(workdir)
    slow = _SlowToStart(workdir / "runs", command_prefix=backends.local.command_prefix, cancel_grace_s=2)
    backends.local = slow
    app = CockpitApp("presets/smoke.toml", backends=backends)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6", "r", "r")
        run = app.run_section
        await wait_for(pilot, lambda: run.job is not None and run.job.terminal, timeout=30)
    assert _SlowToStart.submits == 1
    assert len(list((workdir / "runs").iterdir())) == 1
