"""Data pipeline alone: samples/s of the trainer's DataLoader over CardDataset, cold and cached.

  cold    every item decodes two JPEGs and letterboxes them (no cache: what the first epoch costs
          without data.cache, or every epoch with it off)
  cached  items are copied out of the warm memory-mapped uint8 cache (core.data.UInt8Cache)
with 0, 1 and 2 DataLoader workers, measured alternately over several repeats (median). Rates are steady
state: from the first batch's arrival to the last one's, so worker start-up is not in them.

The rate is compared with what the model consumes: the bare training loop's samples/s (bench_loop.py's
`bare`, passed in by run_all.py or measured here briefly). Target: data >= 2x model, so the loader is
never what the accelerator waits for.

Usage: python benchmarks/bench_data.py [--quick] [--model-rate SAMPLES_PER_S] [--device cuda]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_loop  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
from bench_loop import SIDES, format_table  # noqa: E402


@dataclass
class DataSetup:
    width: int = 128
    height: int = 176
    batch_size: int = 32
    batches: int = 8              # batches per measurement
    repeats: int = 3
    workers: tuple = (0, 1, 2)
    cards: int = 400
    data_dir: str = "data/bench"
    device: str = "cpu"
    model_rate: float = 0.0       # samples/s the model consumes; 0 = measure with the bare loop
    backbone: str = "mobilenet_v3_small"
    precision: str = "auto"


def parse_args(argv: list[str] | None = None) -> DataSetup:
    d = DataSetup()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image-size", default=f"{d.width}x{d.height}", help="WIDTHxHEIGHT (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--batches", type=int, default=d.batches, help="batches per measurement")
    p.add_argument("--repeats", type=int, default=d.repeats)
    p.add_argument("--workers", default="0,1,2", help="comma-separated worker counts (default %(default)s)")
    p.add_argument("--cards", type=int, default=d.cards)
    p.add_argument("--data-dir", default=d.data_dir)
    p.add_argument("--device", default=d.device, choices=("cpu", "cuda"))
    p.add_argument("--model-rate", type=float, default=0.0,
                   help="samples/s the model consumes (default: measure the bare loop briefly)")
    p.add_argument("--backbone", default=d.backbone, help="model for the consumption measurement")
    p.add_argument("--precision", default=d.precision, choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, measures nothing")
    a = p.parse_args(argv)
    try:
        w, h = (int(v) for v in a.image_size.lower().split("x"))
        workers = tuple(int(v) for v in a.workers.split(","))
    except ValueError:
        p.error(f"--image-size {a.image_size!r} / --workers {a.workers!r}: expected e.g. 128x176 and 0,1,2")
    s = DataSetup(w, h, a.batch_size, a.batches, a.repeats, workers, a.cards, a.data_dir, a.device,
                  a.model_rate, a.backbone, a.precision)
    if a.quick:
        s = replace(s, width=48, height=64, batch_size=8, batches=3, repeats=1, workers=(0, 1), cards=40,
                    data_dir=s.data_dir + "-quick", precision="fp32" if s.precision == "auto" else s.precision)
    if s.cards * 0.8 < s.batch_size * s.batches:
        p.error(f"--cards {s.cards}: the train split (80%) must hold --batches x --batch-size = "
                f"{s.batches * s.batch_size} cards")
    return s


def measure(dataset, s: DataSetup, workers: int) -> float:
    """Steady-state samples/s of a fresh DataLoader like the trainer's (sequential indices, pinned on CUDA)."""
    import torch
    from torch.utils.data import DataLoader

    cuda = s.device == "cuda"
    loader = DataLoader(dataset, batch_size=s.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        pin_memory=cuda, prefetch_factor=2 if workers else None,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    t0, n = 0.0, 0
    for i in range(s.batches):
        batch = next(it)
        if cuda:
            for side in SIDES:
                batch[side].to(s.device, non_blocking=True)
        if i == 0:
            bench_loop.sync(s.device)
            t0 = time.perf_counter()
        else:
            n += len(batch["grade"])
    bench_loop.sync(s.device)
    rate = n / max(time.perf_counter() - t0, 1e-9)
    del it
    return rate


def model_rate(s: DataSetup, splits: Path) -> tuple[float, str]:
    ls = bench_loop.Setup(backbone=s.backbone, width=s.width, height=s.height, batch_size=s.batch_size,
                          precision=s.precision, steps=3, warmup=1, cards=s.cards, data_dir=s.data_dir,
                          device=s.device)
    precision, probe = bench_loop.choose_precision(ls, splits)
    if probe:
        return probe[precision], precision
    return bench_loop.BareLoop(ls, splits, precision).measure()[0], precision


def run(s: DataSetup, log=print) -> dict:
    from core.data import CardDataset, UInt8Cache
    from core.records import load_splits

    load_before = os.getloadavg()
    splits = bench_loop.prepare_data(s.data_dir, s.cards)
    records = load_splits(splits).train
    size = (s.width, s.height)
    cache = UInt8Cache(records, size, SIDES, str(bench_loop.cache_dir_of(s.data_dir))).ensure()
    datasets = {"cold": CardDataset(records, size, SIDES), "cached": CardDataset(records, size, SIDES, cache)}
    configs = [(mode, w) for mode in datasets for w in s.workers]
    rates: dict[str, list[float]] = {f"{mode} w{w}": [] for mode, w in configs}
    log(f"bench_data: {s.width}x{s.height} batch {s.batch_size}, {s.batches} batches x {s.repeats} repeats")
    for r in range(s.repeats):
        for mode, w in configs:
            rates[f"{mode} w{w}"].append(measure(datasets[mode], s, w))
        log(f"  repeat {r + 1}/{s.repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))
    consumed, precision = (s.model_rate, "given") if s.model_rate else model_rate(s, splits)
    return {"setup": vars(s), "samples_per_s": rates, "median": {k: statistics.median(v) for k, v in rates.items()},
            "model_rate": consumed, "model_precision": precision, "load_before": load_before,
            "load_after": os.getloadavg()}


def report(result: dict) -> str:
    m, consumed = result["median"], result["model_rate"]
    rows = [[k, f"{v:.0f}", " ".join(f"{x:.0f}" for x in result["samples_per_s"][k]), f"{v / consumed:.1f}x",
             "meets" if v >= 2 * consumed else "below"] for k, v in m.items()]
    s = result["setup"]
    return "\n".join([
        f"data pipeline, {s['width']}x{s['height']}, batch {s['batch_size']}, both sides, {s['device']}; "
        f"model consumes {consumed:.1f} samples/s (bare loop, {s['backbone']}, {result['model_precision']})",
        format_table(["loader", "median samples/s", "runs", "vs model", "target >= 2x"], rows),
        f"load average {result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after"])


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    if s.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    result = run(s, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
