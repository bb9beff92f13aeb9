"""One training step of the local preset's model, and what its border reader's medians cost in it.

The model presets/local.toml builds (both sides, its crops, detail channels and precision) takes forward,
loss, backward, clipping and AdamW steps on random inputs of the preset's shapes, alternately with the
border reader's medians computed by torch.median and by core.model.lower_median (numpy's partition: the
same values), so that a noisy neighbour hurts both columns alike; and the medians of one side's batch
alone, each way. Medians over the repeats.

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
from core.config import load_preset  # noqa: E402
from core.device import make_compute  # noqa: E402
from core.losses import grading_loss  # noqa: E402
from core.model import build_model  # noqa: E402


def torch_median(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.median(dim=dim).values


MEDIANS = {"torch.median": torch_median, "lower_median": core.model.lower_median}


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
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    inputs, targets = step_inputs(cfg, batch)
    l = cfg.loss

    def step():
        with compute.autocast():
            outputs = model(**inputs)
        loss = grading_loss(outputs, targets, l.alpha_emd, l.beta_edge, l.beta_center, l.beta_criteria)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.training.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: first-call allocations and kernel selection
    times: dict[str, list[float]] = {name: [] for name in MEDIANS}
    original = core.model.lower_median
    try:
        for r in range(args.repeats):
            for name in (list(MEDIANS) if r % 2 == 0 else list(reversed(MEDIANS))):
                core.model.lower_median = MEDIANS[name]
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - start) / args.steps)
    finally:
        core.model.lower_median = original
    edges = inputs["back_crops"].float().reshape(batch, -1, 3, d.crop_size, d.crop_size)[:, 4:]
    alone = {}
    for name, median in MEDIANS.items():
        start = time.perf_counter()
        for _ in range(max(1, args.steps * 5)):
            median(edges, -1)
        alone[name] = (time.perf_counter() - start) / max(1, args.steps * 5)
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(compute.amp_dtype, "fp32")
    print(f"local preset, batch {batch}, {precision}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} x {args.steps} steps")
    print("| border reader medians by | ms per training step | ms for one side's edge-crop medians |")
    print("|---|---|---|")
    for name in MEDIANS:
        print(f"| {name} | {statistics.median(times[name]) * 1e3:.0f} | {alone[name] * 1e3:.1f} |")
    ratio = statistics.median(times["lower_median"]) / statistics.median(times["torch.median"])
    print(f"\nstep time lower_median / torch.median: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
