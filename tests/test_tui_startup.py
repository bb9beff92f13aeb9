"""What the cockpit's start-up imports and builds: the first screen (Presets) must not pay for the Google
client libraries, torch, plotting, dialogs or the other sections (they load when a section, a dialog or a
submit needs them), nor for the preset sections not on screen.

Checked in a fresh interpreter (subprocess), since this test process has imported them all already.
Speed itself is measured by benchmarks/tui_bench.py, not asserted here.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Modules (and their submodules) the first screen must not import.
HEAVY = ("torch", "torchvision", "numpy", "PIL", "grpc", "google.cloud.aiplatform", "google.cloud.aiplatform_v1",
         "google.cloud.logging", "google.cloud.logging_v2", "google.cloud.storage", "google.api_core",
         "google.auth", "plotext", "textual_plotext")
LATER_SECTIONS = ("cockpit.tui.sections.cost", "cockpit.tui.sections.build", "cockpit.tui.sections.jobs",
                  "cockpit.tui.sections.run", "cockpit.tui.plots", "cockpit.vertex", "cockpit.logs",
                  "cockpit.tui.dialogs", "cockpit.jobs")  # dialogs and backends: when first needed

CHILD = r"""
import asyncio, json, sys

def loaded():
    return sorted(sys.modules)

from cockpit.tui.app import CockpitApp
after_import = loaded()

async def main():
    app = CockpitApp("presets/local.toml", runs_dir="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        while not app.presets_section.ready:
            await pilot.pause(0.05)
        await app.workers.wait_for_complete()  # the first estimate runs in a worker: count it too
        await pilot.pause()
        first_screen = loaded()
        built = sorted(app.presets_section.form.groups)  # the preset sections built so far
        await pilot.press("f6")
        await pilot.pause()
        shown = app.active_section, type(app.active_section_widget()).__name__
    print(json.dumps({"import": after_import, "first_screen": first_screen, "run_shown": shown,
                      "after_run": loaded(), "built": built}))

asyncio.run(main())
"""


def heavy_in(modules: list[str], names=HEAVY) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_first_screen_imports_no_cloud_sdk_torch_or_later_sections(tmp_path):
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert heavy_in(seen["import"]) == []
    assert heavy_in(seen["first_screen"]) == []
    assert heavy_in(seen["first_screen"], LATER_SECTIONS) == []
    assert seen["built"] == ["data"]  # the form builds the other preset sections when first shown
    # ...and a section is imported and built the first time it is shown.
    assert seen["run_shown"] == ["run", "RunSection"]
    assert "cockpit.tui.sections.run" in seen["after_run"] and "textual_plotext" in seen["after_run"]


GC_CHILD = r"""
import asyncio, gc, json

from cockpit.tui.app import CockpitApp

class Probe(CockpitApp):
    def on_mount(self):
        super().on_mount()
        self.gc_at_mount = gc.isenabled()

async def main():
    seen = {}
    app = Probe("presets/local.toml", runs_dir="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        while not app.presets_section.ready:
            await pilot.pause(0.05)
        await pilot.pause(0.2)  # the start-up check runs every 50 ms
        seen["at_mount"], seen["form_complete"] = app.gc_at_mount, gc.isenabled()
    quick = Probe("presets/local.toml", runs_dir="runs")  # quit before the form is complete
    async with quick.run_test(size=(100, 30)) as pilot:
        await pilot.press("q")
    seen["after_quick_quit"] = gc.isenabled()
    print(json.dumps(seen))

asyncio.run(main())
"""


def test_garbage_collector_paused_only_while_the_first_screen_builds(tmp_path):
    """Start-up pauses the cyclic collector (benchmarks/tui_bench.py: ~20 % of the time to first paint);
    it must be back on once the form is complete, and when the app ends before that."""
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", GC_CHILD], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"at_mount": False, "form_complete": True, "after_quick_quit": True}


def test_cli_pauses_the_collector_for_the_import_and_a_bad_preset_turns_it_back_on(tmp_path):
    """`psa-cockpit` pauses the collector before importing Textual; an app that never starts (here a
    preset that does not exist: exit 2) must not leave it off."""
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    code = ("import gc, sys\n"
            "import cockpit.tui.startup as startup\n"
            "seen = []\n"
            "real_pause = startup.pause_gc\n"
            "def pause():\n"
            "    real_pause()\n"
            "    seen.append(('paused', gc.isenabled(), 'textual' in sys.modules))\n"
            "startup.pause_gc = pause\n"
            "from cockpit.cli import main\n"
            "rc = main(['presets/missing.toml'])\n"
            "print(rc, seen, gc.isenabled())\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "missing.toml" in proc.stderr
    # paused before Textual was imported, off while paused, back on after the refusal
    assert proc.stdout.strip() == "2 [('paused', False, False)] True"
