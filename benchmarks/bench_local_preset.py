"""The whole local preset, end to end: wall time, samples/s and the final test metrics.

Runs `python -m core.train --preset local --log-format json` (plus any --set overrides) in a subprocess,
reads its metric lines (docs/design.md §4) and prints one table: wall time, median samples/s of the epochs
per phase, test QWK, MAE, exact and within-one accuracy. The real preset takes about 15 minutes on a
2-core machine; `--quick` runs a tiny version of it (separate data and cache) to check the plumbing.

Usage: python benchmarks/bench_local_preset.py [--preset local] [--set section.key=value ...] [--quick]
                                               [--output-dir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_loop import ROOT, format_table  # noqa: E402

QUICK_DIR = "data/bench-local-quick"
QUICK_OVERRIDES = [
    f"data.splits={QUICK_DIR}/splits.json", "data.synthetic_n=40", "data.synthetic_size=[80,112]",
    "data.image_size=[48,64]", f"data.cache_dir={QUICK_DIR}/cache", "training.batch_size=8",
    "training.phase1_epochs=1", "training.phase2_epochs=1", "training.max_steps_per_epoch=2",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="local", help="preset name or TOML path (default %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset key (repeatable), passed to core.train")
    p.add_argument("--quick", action="store_true", help="a tiny run of the preset (seconds, not minutes)")
    p.add_argument("--output-dir", default="", help="run directory (default: a temporary one, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    return p.parse_args(argv)


def parse_events(stdout: str) -> list[dict]:
    """The JSON metric lines of the trainer's stdout (anything else is ignored)."""
    events = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def summarise(events: list[dict], wall_s: float) -> dict:
    epochs = [e for e in events if e.get("event") == "epoch"]
    done = next((e for e in events if e.get("event") == "done"), {})
    per_phase = {}
    for phase in (1, 2):
        rates = [e["samples_per_s"] for e in epochs if e.get("phase") == phase and e.get("samples_per_s")]
        if rates:
            per_phase[phase] = statistics.median(rates)
    return {"wall_s": wall_s, "epochs": len(epochs), "samples_per_s": per_phase,
            "train_s": sum(e.get("epoch_time_s") or 0.0 for e in epochs),
            "data_s": sum(e.get("data_time_s") or 0.0 for e in epochs),
            "test_qwk": done.get("test_qwk"), "test_mae": done.get("test_mae"),
            "test_acc": done.get("test_acc"), "test_within_one": done.get("test_within_one")}


def run(preset: str, overrides: list[str], output_dir: str) -> tuple[int, dict, str]:
    """-> (trainer exit code, summary, its stderr)."""
    cmd = [sys.executable, "-m", "core.train", "--preset", preset, "--log-format", "json",
           "--output-dir", output_dir]
    for o in overrides:
        cmd += ["--set", o]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return proc.returncode, summarise(parse_events(proc.stdout), wall), proc.stderr


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def report(preset: str, overrides: list[str], r: dict) -> str:
    sps = r["samples_per_s"]
    row = [preset, f"{r['wall_s']:.0f}", str(r["epochs"]), _f(sps.get(1), ".1f"), _f(sps.get(2), ".1f"),
           f"{r['data_s']:.1f} / {r['train_s']:.1f}", _f(r["test_qwk"], ".4f"), _f(r["test_mae"], ".3f"),
           _f(r["test_acc"], ".3f"), _f(r["test_within_one"], ".3f")]
    headers = ["preset", "wall s", "epochs", "samples/s ph1", "samples/s ph2", "data s / train s", "test QWK",
               "MAE", "exact", "within one"]
    return "\n".join([f"overrides: {' '.join(overrides) or '(none)'}; load average {os.getloadavg()[0]:.2f}",
                      format_table(headers, [row])])


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    overrides = (QUICK_OVERRIDES if a.quick else []) + a.overrides  # explicit --set wins
    from core.config import ConfigError, load_preset

    try:  # fail in a tenth of a second, not after the trainer has imported torch
        load_preset(a.preset, overrides)
    except ConfigError as exc:
        print(f"bench_local_preset: {exc}", file=sys.stderr)
        return 2
    out = a.output_dir or tempfile.mkdtemp(prefix="psa-bench-local-")
    try:
        code, summary, stderr = run(a.preset, overrides, out)
    finally:
        if not a.output_dir and not a.keep:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
    if code != 0:
        last = (stderr.strip().splitlines() or [f"exit code {code}"])[-1]
        print(f"bench_local_preset: the trainer failed (exit {code}): {last}", file=sys.stderr)
        return code
    print(report(a.preset, overrides, summary))
    if a.keep and not a.output_dir:
        print(f"run directory kept: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
