"""What `make train` spends before the first step: generating the synthetic set and filling the uint8 caches.

Each stage is timed on one thread and on all cores (core.parallel.ordered_map), alternately, in the same
run, so the ratio is fair on a shared machine; and the detail map's 3x3 median (core.detail_map.median3x3)
against PIL's MedianFilter(3), and its 3x3 grey opening (core.detail_map.opening3x3, the crease channel's)
against torch's stride-1 max pools, which each replaced with the same output.

Usage: python benchmarks/bench_prepare.py [--cards 800] [--repeats 2] [--quick]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import core.parallel  # noqa: E402
from core.data import UInt8Cache  # noqa: E402
from core.config import load_preset  # noqa: E402
from core.detail_map import median3x3, opening3x3  # noqa: E402
from core.records import load_splits  # noqa: E402
from core.synth.dataset import generate  # noqa: E402

LOCAL_DATA = load_preset("local").data  # what `make train` prepares: presets/local.toml's data table


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def prepare_once(root: Path, cards: int) -> dict[str, float]:
    """Seconds for each stage of preparing `cards` synthetic cards the way presets/local.toml does."""
    data, cache = root / "data", root / "cache"
    out = {"generate": _timed(lambda: generate(data, cards, seed=0))}
    records = [r for name in ("train", "val", "test") for r in load_splits(data / "splits.json").split(name)]
    sides = ("front", "back")
    d = LOCAL_DATA
    size = tuple(d.image_size)
    out["view cache + detail map"] = _timed(lambda: UInt8Cache(records, size, sides, str(cache),
                                                               detail=d.detail_kind if d.detail else "").ensure())
    out["crop cache"] = _timed(lambda: UInt8Cache(records, size, sides, str(cache),
                                                  crops=(d.crop_fraction, d.crop_size, d.edge_crops)).ensure())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="40 cards, once: proves it runs, measures nothing")
    args = ap.parse_args(argv)
    if args.quick:
        args.cards, args.repeats = 40, 1
    threads = core.parallel.default_workers()
    original = core.parallel.default_workers
    runs: dict[int, list[dict[str, float]]] = {1: [], threads: []}
    for _ in range(args.repeats):
        for workers in runs:  # alternate, so a noisy neighbour hurts both columns alike
            core.parallel.default_workers = lambda w=workers: w
            root = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
            try:
                runs[workers].append(prepare_once(root, args.cards))
            finally:
                shutil.rmtree(root, ignore_errors=True)
    core.parallel.default_workers = original
    print(f"{args.cards} cards, median of {args.repeats}; 1 thread vs {threads} threads")
    print(f"| stage | 1 thread s | {threads} threads s | ratio |")
    print("|---|---|---|---|")
    for stage in list(runs[1][0]) + ["total"]:
        def med(workers):
            return statistics.median(sum(r.values()) if stage == "total" else r[stage] for r in runs[workers])
        print(f"| {stage} | {med(1):.2f} | {med(threads):.2f} | {med(threads) / med(1):.2f} |")

    gray = np.random.default_rng(0).integers(0, 256, (280, 200), dtype=np.uint8)
    pil = Image.fromarray(gray)
    n = 5 if args.quick else 200
    slow = _timed(lambda: [pil.filter(ImageFilter.MedianFilter(3)) for _ in range(n)]) / n
    fast = _timed(lambda: [median3x3(gray) for _ in range(n)]) / n
    print(f"\n3x3 median of a 200x280 scan: PIL {slow * 1e3:.2f} ms, median3x3 {fast * 1e3:.2f} ms "
          f"({slow / fast:.1f}x)")
    torch_gray = torch.from_numpy(gray.astype(np.float32))[None, None]
    slow = _timed(lambda: [F.max_pool2d(-F.max_pool2d(-torch_gray, 3, 1, 1), 3, 1, 1) for _ in range(n)]) / n
    fast = _timed(lambda: [opening3x3(gray) for _ in range(n)]) / n
    print(f"3x3 grey opening of a 200x280 scan: torch max pools {slow * 1e3:.2f} ms, opening3x3 {fast * 1e3:.2f} ms "
          f"({slow / fast:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
