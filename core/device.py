"""Where and how this process computes: the device, autocast precision and seeded generators.

Precision `auto`: bf16 on GPUs that support it, fp16 with a GradScaler on older GPUs; on a CPU, bf16 where
the CPU has native bf16 instructions (AVX512-BF16 or AMX: there it ran resnet18 about 2x faster than
fp32, presets/local.toml), fp32 elsewhere (emulated bf16 is slower than fp32). fp16 without CUDA falls
back to fp32 with one warning, as the optimisations guide's `--fp16` did, instead of refusing to start.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Compute:
    device: torch.device
    amp_dtype: torch.dtype | None   # None: plain fp32
    scaler: torch.amp.GradScaler    # a no-op unless fp16 needs loss scaling

    @property
    def precision(self) -> str:
        return PRECISION_NAMES[self.amp_dtype]

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def step(self, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> None:
        """One optimizer step on the gradients backward() left, through the scaler: unscale them and clip
        their global norm to max_grad_norm (when > 0), step (the scaler skips a step whose gradients
        overflowed), update the loss scale, zero the gradients."""
        if max_grad_norm > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU executes bf16 natively (AVX512-BF16 or AMX-BF16).

    torch's own probes first (they know the platform); /proc/cpuinfo's flags where those are missing.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [p for p in probes if callable(p)]
    if probes:
        return any(p() for p in probes)
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = {word for line in text.splitlines() if line.startswith("flags") for word in line.split()}
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(name: str, device: torch.device,
                      warn: Callable[[str], None] = lambda message: None) -> tuple[torch.dtype | None, bool]:
    """-> (autocast dtype or None for fp32, whether a GradScaler is needed)."""
    if name == "auto":
        if device.type == "cuda":
            return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)
        return (torch.bfloat16, False) if device.type == "cpu" and cpu_has_native_bf16() else (None, False)
    if name == "fp16" and device.type != "cuda":
        warn(f"training.precision = 'fp16' needs a CUDA GPU; this run has {device.type} only: "
             f"training in fp32 instead")
        return None, False
    return {"fp16": (torch.float16, True), "bf16": (torch.bfloat16, False)}.get(name, (None, False))


def pick_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def make_compute(device: torch.device, precision: str,
                 warn: Callable[[str], None] = lambda message: None) -> Compute:
    amp_dtype, use_scaler = resolve_precision(precision, device, warn)
    return Compute(device, amp_dtype, torch.amp.GradScaler(device.type, enabled=use_scaler))


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    """Seed python, numpy and torch; deterministic kernels make CPU runs bitwise reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
