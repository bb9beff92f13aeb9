"""One training step of the local preset's model, and what three of its parts cost in it.

The model presets/local.toml builds (both sides, its crops, detail channels and precision) takes forward,
loss, backward, clipping and AdamW steps on random inputs of the preset's shapes, in four variants
alternated (rotated each repeat, so that a noisy neighbour hurts them alike), each a change on the one
before:
  before        the border reader's medians by torch.median, AdamW's per-parameter loop (the CPU default)
  lower_median  the medians by core.model.lower_median (numpy's partition: the same values)
  fused AdamW   AdamW as core.schedulers makes it, one fused kernel over all parameters
  sides at once the back's and the front's networks at the same time, each on half the threads
                (core/concurrent_sides.py, model.concurrent_sides): the trainer's step on a CPU with 2+ threads
Also the medians of one side's edge crops alone, each way. Medians over the repeats.

Usage: python benchmarks/bench_step.py [--steps 4] [--repeats 6] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import core.model  # noqa: E402
from core.concurrent_sides import SideThreads  # noqa: E402
from core.config import load_preset  # noqa: E402
from core.device import make_compute  # noqa: E402
from core.losses import grading_loss  # noqa: E402
from core.model import build_model  # noqa: E402
from core.schedulers import make_optimizer_and_scheduler  # noqa: E402


def torch_median(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.median(dim=dim).values


def step_inputs(cfg, batch: int) -> tuple[dict, dict]:
    """Random model inputs and targets of the preset's shapes (channels_last like the trainer's)."""
    d = cfg.data
    w, h = d.image_size
    channels = 3 + (core.model.detail_channels(d.detail_kind) if d.detail else 0)
    crops_per_side = 4 + 4 * d.edge_crops

    def image(n, c, hh, ww):
        return torch.rand(n, c, hh, ww).contiguous(memory_format=torch.channels_last)

    inputs = {"back": image(batch, channels, h, w), "front": image(batch, channels, h, w)}
    if d.crop_size:
        inputs |= {"back_crops": image(batch * crops_per_side, 3, d.crop_size, d.crop_size),
                   "front_crops": image(batch * crops_per_side, 3, d.crop_size, d.crop_size)}
    g = torch.Generator().manual_seed(0)
    targets = {"grade": torch.randint(0, 10, (batch,), generator=g), "edge": torch.rand(batch, generator=g),
               "edge_mask": torch.ones(batch), "centering": torch.rand(batch, 4, generator=g),
               "center_mask": torch.ones(batch), "subgrades": torch.randint(0, 10, (batch, 4), generator=g)}
    return inputs, targets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="steps per timing (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=6, help="timings per column (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="batch of 2, one step, once: proves it runs")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        ap.error(f"--steps {args.steps} --repeats {args.repeats}: both must be at least 1")
    cfg = load_preset("local")
    batch = 2 if args.quick else cfg.training.batch_size
    if args.quick:
        args.steps, args.repeats = 1, 1
    device = torch.device("cpu")  # the machine `make train` is tuned for; a GPU has no numpy path
    compute = make_compute(device, cfg.training.precision)
    torch.manual_seed(0)
    d = cfg.data
    model = build_model(cfg.model, device, d.crop_size, d.crop_fraction, d.detail, d.edge_crops, d.detail_kind)
    model.train()
    loop_adamw = torch.optim.AdamW(model.parameters(), 1e-4, foreach=False)
    trainers_adamw, _ = make_optimizer_and_scheduler(model, cfg.training, 1e-4, 100, device)
    sides = SideThreads(torch.get_num_threads()) if torch.get_num_threads() >= 2 else None
    variants = {"before": (torch_median, loop_adamw, None), "lower_median": (core.model.lower_median, loop_adamw, None),
                "fused AdamW": (core.model.lower_median, trainers_adamw, None)}
    if sides is not None:  # one thread has nothing to split
        variants["sides at once"] = (core.model.lower_median, trainers_adamw, sides)
    inputs, targets = step_inputs(cfg, batch)
    l = cfg.loss

    def step(optimizer):
        with compute.autocast():
            outputs = model(**inputs)
        loss = grading_loss(outputs, targets, l.alpha_emd, l.beta_edge, l.beta_center, l.beta_criteria)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.training.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {name: [] for name in variants}
    original = core.model.lower_median
    try:
        for _, optimizer, model.side_threads in variants.values():
            step(optimizer)  # warm-up: first-call allocations, kernel selection, optimizer state
        for r in range(args.repeats):
            names = list(variants)
            for name in names[r % len(names):] + names[:r % len(names)]:
                core.model.lower_median, optimizer, model.side_threads = variants[name]
                start = time.perf_counter()
                for _ in range(args.steps):
                    step(optimizer)
                times[name].append((time.perf_counter() - start) / args.steps)
    finally:
        core.model.lower_median, model.side_threads = original, None
        if sides is not None:
            sides.close()
    edges = inputs["back_crops"].float().reshape(batch, -1, 3, d.crop_size, d.crop_size)[:, 4:]
    alone, calls = {}, args.steps * 5
    for name, median in (("torch.median", torch_median), ("lower_median", core.model.lower_median)):
        start = time.perf_counter()
        for _ in range(calls):
            median(edges, -1)
        alone[name] = (time.perf_counter() - start) / calls
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(compute.amp_dtype, "fp32")
    print(f"local preset, batch {batch}, {precision}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} x {args.steps} steps")
    print("| variant | ms per training step | / before |")
    print("|---|---|---|")
    before = statistics.median(times["before"])
    for name in variants:
        ms = statistics.median(times[name])
        print(f"| {name} | {ms * 1e3:.0f} | {ms / before:.3f} |")
    print(f"\none side's edge-crop medians: torch.median {alone['torch.median'] * 1e3:.1f} ms, "
          f"lower_median {alone['lower_median'] * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
