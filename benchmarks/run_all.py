"""All benchmarks in one go (`make bench`), then one combined table.

  1-3  bench_loop.py     bare limit vs core.train's Trainer vs PyTorch Lightning (alternating, medians)
  4    bench_data.py     the data pipeline alone, cold and cached, 0/1/2 workers, against the model's rate
  5    cockpit start-up  `psa-cockpit --help` wall time (median of several runs)
       tui_bench.py      the TUI's own benchmark, when benchmarks/tui_bench.py exists
       tail_latency.py   live log tail latency against the fake Cloud Logging server, when present
  --with-local-preset    also the whole local preset end to end (bench_local_preset.py; ~15 min)

Usage: python benchmarks/run_all.py [--quick] [--device cpu|cuda] [--json results.json] [--with-local-preset]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_data  # noqa: E402
import bench_local_preset  # noqa: E402
import bench_loop  # noqa: E402
from bench_loop import ROOT, format_table  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks every benchmark runs")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--backbone", default="mobilenet_v3_small")
    p.add_argument("--data-dir", default="data/bench", help="synthetic set and uint8 cache (generated once)")
    p.add_argument("--repeats", type=int, default=0, help="loop repeats (default: bench_loop's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for the loops (0 = torch's default)")
    p.add_argument("--startup-runs", type=int, default=5, help="runs of `psa-cockpit --help` (median)")
    p.add_argument("--with-local-preset", action="store_true", help="also run the whole local preset")
    p.add_argument("--json", dest="json_path", default="", help="also write every result as JSON here")
    return p.parse_args(argv)


def cockpit_startup(runs: int) -> dict:
    """Wall time of `psa-cockpit --help` in a fresh process: what a user waits for on every command."""
    exe = Path(sys.executable).parent / "psa-cockpit"
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "cockpit", "--help"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return {"command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)), "runs": times,
            "median_s": statistics.median(times)}


def script_output(name: str, args: list[str], timeout_s: int = 600) -> dict | None:
    """Run another benchmark script (owned elsewhere) and keep its printed table; None when absent."""
    path = HERE / name
    if not path.exists():
        return None
    try:
        proc = subprocess.run([sys.executable, str(path), *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"script": name, "rc": None, "output": f"timed out after {timeout_s} s"}
    out = proc.stdout.strip() or proc.stderr.strip()
    return {"script": name, "rc": proc.returncode, "output": out}


def summary_rows(loop: dict, data: dict, startup: dict, extras: list[dict]) -> list[list[str]]:
    med = loop["median"]
    rows = [[f"{name} loop", f"{v:.1f} samples/s", "", ""] for name, v in med.items()]
    rows.append(["core / bare", f"{loop['core_over_bare']:.3f}", ">= 0.95",
                 "meets" if loop["core_over_bare"] >= 0.95 else "below"])
    if loop.get("core_over_lightning") is not None:
        rows.append(["core / lightning", f"{loop['core_over_lightning']:.3f}", ">= 1.0",
                     "meets" if loop["core_over_lightning"] >= 1.0 else "below"])
    consumed = data["model_rate"]
    for name, v in data["median"].items():
        rows.append([f"data {name}", f"{v:.0f} samples/s = {v / consumed:.1f}x model", ">= 2x",
                     "meets" if v >= 2 * consumed else "below"])
    if "median_s" in startup:
        rows.append(["psa-cockpit --help", f"{startup['median_s']:.2f} s", "", ""])
    else:
        rows.append(["psa-cockpit --help", f"failed: {startup.get('error')}", "", ""])
    for e in extras:
        rows.append([e["script"], "see below" if e["rc"] == 0 else f"failed (exit {e['rc']})", "", ""])
    return rows


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # before torch loads (the Trainer takes any GPU)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    loop_setup = bench_loop.parse_args((["--quick"] if a.quick else []) + ["--device", a.device,
                                                                          "--backbone", a.backbone,
                                                                          "--data-dir", a.data_dir,
                                                                          "--threads", str(a.threads)])
    if a.repeats:
        loop_setup = replace(loop_setup, repeats=a.repeats)
    loop = bench_loop.run(loop_setup, log=log)
    data_setup = replace(bench_data.parse_args((["--quick"] if a.quick else []) + ["--data-dir", a.data_dir]),
                         device=a.device,
                         model_rate=loop["median"]["bare"], backbone=a.backbone)
    data = bench_data.run(data_setup, log=log)
    log("cockpit start-up ...")
    startup = cockpit_startup(1 if a.quick else a.startup_runs)
    extras = [e for e in (script_output("tui_bench.py", ["--lines", "2000", "--runs", "1"] if a.quick else []),
                          script_output("tail_latency.py", ["--n", "5"] if a.quick else [])) if e]
    local = None
    if a.with_local_preset:
        log("local preset end to end ...")
        code, local, _ = bench_local_preset.run("local", bench_local_preset.QUICK_OVERRIDES if a.quick else [],
                                                str(ROOT / "outputs" / "bench-local"))
        local["rc"] = code
    sections = [
        "## Summary\n" + format_table(["measure", "value", "target", "verdict"],
                                      summary_rows(loop, data, startup, extras)),
        "## Training loop (1-3)\n" + bench_loop.report(loop),
        "## Data pipeline (4)\n" + bench_data.report(data),
    ]
    if "runs" in startup:
        sections.append(f"## Cockpit start-up (5)\n`{startup['command']}`: median {startup['median_s']:.2f} s over "
                        f"{len(startup['runs'])} runs (" + " ".join(f"{t:.2f}" for t in startup["runs"]) + ")")
    for e in extras:
        sections.append(f"## {e['script']}\n{e['output']}")
    if local is not None:
        sections.append("## Local preset end to end\n" + bench_local_preset.report("local", [], local))
    load = os.getloadavg()
    sections.append(f"total {time.perf_counter() - t0:.0f} s; load average now {load[0]:.2f} {load[1]:.2f} "
                    f"{load[2]:.2f} on {os.cpu_count()} cores; python {sys.version.split()[0]}, "
                    f"torch {loop['torch']}, lightning {loop.get('lightning') or 'not run'}")
    print("\n\n".join(sections))
    if a.json_path:
        Path(a.json_path).write_text(json.dumps({"loop": loop, "data": data, "startup": startup,
                                                 "extras": extras, "local_preset": local}, indent=2),
                                     encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
