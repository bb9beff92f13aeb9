"""TUI numbers (a script, not a test): launch-to-first-paint time, and how fast the Run/Logs view takes
log lines while the UI stays responsive.

    .venv/bin/python benchmarks/tui_bench.py [--lines 100000] [--runs 5]

1. First paint: a fresh `python` process per run (imports included), timed from just before the process
   starts to the first frame handed to the terminal driver, headless, 100x30; then to a usable form
   (`PresetsSection.ready`): the preset picker and the preset section on screen ([data]) mounted, its
   rows showing the file and taking keys. The form builds each other section the first time it is
   shown, which is not start-up: timed apart, as the first switch to [training] (its 23 rows). Also
   reports the process's CPU time to the same two points (steadier than wall time when others share
   the machine) and whether torch or the Google SDKs were imported by then (they must not be).
   Alternating with those runs, the same is timed for a bare Textual app (one Static and the Footer):
   Python's start plus Textual's import and first frame, the floor under any Textual program here.
2. Log throughput: a producer thread feeds N lines (JSON metric lines and plain ones, as a trainer
   prints them) through the Run/Logs section's LineFeed, as the tail worker does; the UI drains the feed
   on its timer. Reports lines/s from first put to last line in the Log, and the event loop's worst stall
   (the largest gap between 10 ms ticks) as the responsiveness measure, then the time a `/` filter
   takes over everything loaded.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = r"""
import sys, time
sys.path.insert(0, {repo!r})
from cockpit.tui.startup import pause_gc
pause_gc()  # what `psa-cockpit` does before importing the TUI (cockpit.cli._tui)
from cockpit.tui.app import CockpitApp

class Timed(CockpitApp):
    painted = switching = False

    def _display(self, screen, renderable):
        # The first frame handed to the terminal driver is the first paint.
        if renderable is not None and not self.painted:
            self.painted = True
            heavy = [m for m in ("torch", "google.cloud.aiplatform", "google.cloud.aiplatform_v1",
                                 "google.cloud.logging_v2", "google.cloud.storage", "grpc") if m in sys.modules]
            print("PAINT", time.time(), ",".join(heavy) or "-", time.process_time(), flush=True)
            self.set_interval(0.01, self.when_ready)
        super()._display(screen, renderable)

    async def when_ready(self):
        form = self.presets_section.form
        if self.presets_section.ready and not self.switching:
            self.switching = True
            print("READY", time.time(), "-", time.process_time(), flush=True)
            start = time.perf_counter()
            await form.show_section("training")  # built on its first show
            print("SWITCH", time.perf_counter() - start, flush=True)
            self.exit()

Timed("presets/local.toml").run(headless=True, size=(100, 30))
"""


BARE = r"""
import sys, time
from textual.app import App
from textual.widgets import Footer, Static

class Bare(App):
    painted = False

    def compose(self):
        yield Static("psa-cockpit")
        yield Footer()

    def _display(self, screen, renderable):
        if renderable is not None and not self.painted:
            self.painted = True
            print("PAINT", time.time(), "-", time.process_time(), flush=True)
            self.exit()
        super()._display(screen, renderable)

Bare().run(headless=True, size=(100, 30))
"""


def bare_textual_paint() -> tuple[float, float]:
    """(wall s, CPU s) from launch to the first paint of a bare Textual app."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", BARE], capture_output=True, text=True, cwd=REPO, check=True)
    stamp = next(ln.split(" ") for ln in out.stdout.splitlines() if ln.startswith("PAINT"))
    return float(stamp[1]) - start, float(stamp[3])


def first_paint(runs: int) -> None:
    paints, readies, heavy = [], [], ""
    cpu_paints, cpu_readies = [], []  # CPU seconds of the process: less sensitive to a busy machine
    bare, cpu_bare = [], []
    switches = []  # seconds to build and show [training] the first time
    code = CHILD.format(repo=str(REPO))
    for _ in range(runs):
        wall, cpu = bare_textual_paint()
        bare.append(wall)
        cpu_bare.append(cpu)
        start = time.time()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
        stamps = {ln.split(" ")[0]: ln.split(" ") for ln in out.stdout.splitlines()
                  if ln.split(" ")[0] in ("PAINT", "READY", "SWITCH")}
        paints.append(float(stamps["PAINT"][1]) - start)
        readies.append(float(stamps["READY"][1]) - start)
        heavy = stamps["PAINT"][2]
        cpu_paints.append(float(stamps["PAINT"][3]))
        cpu_readies.append(float(stamps["READY"][3]))
        switches.append(float(stamps["SWITCH"][1]))
    print(f"launch to first paint: median {statistics.median(paints):.2f} s, min {min(paints):.2f} s; "
          f"to a usable form (picker and the section on screen mounted): "
          f"median {statistics.median(readies):.2f} s ({runs} runs, fresh process each, imports included)")
    print(f"CPU time of the process to first paint: median {statistics.median(cpu_paints):.2f} s; to a usable "
          f"form: median {statistics.median(cpu_readies):.2f} s (load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"first switch to [training] (its 23 rows built and mounted): "
          f"median {statistics.median(switches) * 1000:.0f} ms")
    print(f"heavy modules imported by first paint: {'none' if heavy == '-' else heavy}")
    print(f"a bare Textual app (Static + Footer), same runs: first paint median {statistics.median(bare):.2f} s "
          f"wall, {statistics.median(cpu_bare):.2f} s CPU (Python + Textual's import and first frame)")


def trainer_lines(n: int) -> list:
    from cockpit.local_runs import to_log_line

    out = []
    for i in range(n):
        if i % 50 == 0:
            text = json.dumps({"severity": "INFO", "message": f"epoch {i // 50}", "event": "epoch", "phase": 2,
                               "epoch": i // 50, "epochs": n // 50, "step": i, "train_loss": 1 / (1 + i),
                               "val_loss": 1.1 / (1 + i), "val_qwk": i / (n + 1), "lr": 1e-3, "samples_per_s": 80.0})
        elif i % 10 == 0:
            text = json.dumps({"severity": "INFO", "message": f"step {i}", "event": "step", "step": i,
                               "lr": 1e-3, "train_loss": 0.5})
        else:
            text = f"plain trainer output line {i} with some words to make it a realistic width"
        out.append(to_log_line(text))
    return out


async def log_throughput(n: int) -> None:
    from cockpit.tui.app import CockpitApp

    lines = trainer_lines(n)
    app = CockpitApp("presets/local.toml", runs_dir=Path(tempfile.mkdtemp()) / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f6")
        await pilot.pause()
        run = app.run_section
        view = run.log_view
        gaps: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        ticker = app.set_interval(0.01, tick)

        def produce() -> None:
            for line in lines:
                run.feed.put(line)

        start = time.perf_counter()
        threading.Thread(target=produce, daemon=True).start()
        while len(view.lines) < n:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        await pilot.pause()
        ticker.stop()
        # With everything loaded, a filter rebuilds the view from all kept lines.
        t = time.perf_counter()
        view.apply_filter("epoch")
        await pilot.pause()
        filter_s = time.perf_counter() - t
    print(f"log view: {n:,} lines in {elapsed:.2f} s = {n / elapsed:,.0f} lines/s "
          f"(metric lines parsed and plotted on the way)")
    print(f"event loop while streaming: worst gap between 10 ms ticks {max(gaps) * 1000:.0f} ms, "
          f"median {statistics.median(gaps) * 1000:.0f} ms")
    print(f"with {n:,} lines loaded: filter 'epoch' over all of them {filter_s * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    first_paint(args.runs)
    work = Path(tempfile.mkdtemp())
    shutil.copytree(REPO / "presets", work / "presets")
    os.chdir(work)
    asyncio.run(log_throughput(args.lines))


if __name__ == "__main__":
    main()
