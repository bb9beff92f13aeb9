"""How fast the model grades: latency per card at batch 1 (median and p95) and cards/s at the eval batch
size, on a named device. The numbers go into the report (core.evaluate and the end of training) so they
compare with the Vertex guide's "45-60 ms per card".

What is timed is the model's forward pass on decoded, resized cards (normalisation included, in fp32 as
the exported model runs in core.predict); decoding JPEGs is not, since it depends on the scans' size and
the disk. Warm-up passes come first (allocator, kernel selection). CUDA work is synchronised before each
clock read, or the clock would measure only the launch.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from core.data import model_inputs

BATCH1_RUNS, WARMUP_RUNS, THROUGHPUT_BATCHES = 10, 1, 1


def device_name(device: torch.device | str) -> str:
    """'NVIDIA L4 (cuda:0)' or 'AMD EPYC 7B13 (cpu, 2 threads)': what a reader needs to compare numbers."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"{_cpu_model()} (cpu, {torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure(model: torch.nn.Module, cards: Mapping[str, torch.Tensor], batch_size: int, reads: int = 1) -> dict:
    """Time `model` on `cards` ({side: uint8 NxCxHxW}, the sides the model reads, N >= 1), each card read
    `reads` times (core/reads.py: a card's reads go through in one pass, as core.inference runs them).

    Returns {"device", "batch1_median_ms", "batch1_p95_ms", "cards_per_s", "batch_size", "runs", "reads"};
    cards are reused cyclically to fill BATCH1_RUNS single-card passes (each of `reads` images) and a pass
    of `batch_size` images (batch_size // reads cards).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    n = next(iter(cards.values())).shape[0]
    on_device = {s: x.to(device) for s, x in cards.items()}

    sides = [s for s in on_device if not s.endswith("_crops")]

    def forward(index: torch.Tensor) -> None:  # the trainer's own input path, crops included
        index = index.repeat_interleave(reads)  # each card's reads in one pass, as core.inference runs them
        model(**model_inputs({s: x.index_select(0, index) for s, x in on_device.items()}, sides, device, False))

    times = []
    for i in range(WARMUP_RUNS + BATCH1_RUNS):
        index = torch.tensor([i % n], device=device)
        _sync(device)
        start = time.perf_counter()
        forward(index)
        _sync(device)
        if i >= WARMUP_RUNS:
            times.append((time.perf_counter() - start) * 1000.0)
    # A pass of batch_size images: with several reads, batch_size // reads cards.
    big = torch.arange(max(1, batch_size // reads), device=device) % n
    forward(big)  # warm-up at this batch size
    _sync(device)
    start = time.perf_counter()
    for _ in range(THROUGHPUT_BATCHES):
        forward(big)
    _sync(device)
    elapsed = time.perf_counter() - start
    model.train(was_training)
    return {"device": device_name(device), "batch1_median_ms": round(float(np.median(times)), 3),
            "batch1_p95_ms": round(float(np.percentile(times, 95)), 3),
            "cards_per_s": round(len(big) * THROUGHPUT_BATCHES / max(elapsed, 1e-9), 2),
            "batch_size": batch_size, "runs": BATCH1_RUNS, "reads": reads, "precision": "fp32",
            "timed": "model forward on decoded cards"}


def sample_cards(dataset, sides, limit: int = 16) -> dict[str, torch.Tensor]:
    """The first `limit` cards of a CardDataset as {side: uint8 NxCxHxW} (and {side}_crops when the
    dataset cuts crops) for `measure`."""
    items = [dataset[i] for i in range(min(limit, len(dataset)))]
    keys = [k for s in sides for k in (s, f"{s}_crops") if k in items[0]]
    return {k: torch.stack([item[k] for item in items]) for k in keys}
