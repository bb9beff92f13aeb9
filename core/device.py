"""Where and how this process computes: the device, autocast precision and seeded generators."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from core.config import ConfigError

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


def resolve_precision(name: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """-> (autocast dtype or None for fp32, whether a GradScaler is needed)."""
    if name == "auto":
        if device.type == "cuda":
            return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)
        return None, False
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("training.precision = 'fp16' needs a CUDA GPU (use 'bf16' or 'fp32' on CPU)")
    return {"fp16": (torch.float16, True), "bf16": (torch.bfloat16, False)}.get(name, (None, False))


def pick_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def make_compute(device: torch.device, precision: str) -> Compute:
    amp_dtype, use_scaler = resolve_precision(precision, device)
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
