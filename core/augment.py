"""Label-preserving augmentation, on the device, for a whole batch at once.

Nothing here may move the print relative to the card border (that would change the centering label):
no flips, no crops. Colour jitter, a light blur and a small rotation of the whole card are fine.
Randomness comes from a generator seeded per batch, so a resumed run augments exactly as the
uninterrupted one did.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


class AugmentSeed(NamedTuple):
    """What seeds one training batch's augmentation: its place in the run, never a global RNG."""
    seed: int
    phase: int
    epoch: int
    batch_index: int  # the batch's index in the epoch, interleaved across ranks


def batch_generator(seed: int, phase: int, epoch: int, batch_index: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + phase * 10_007 + epoch * 101 + batch_index) % (2**63 - 1))
    return g


_KERNELS: dict[tuple[torch.device, torch.dtype, int], torch.Tensor] = {}


def _blur_kernel(device: torch.device, dtype: torch.dtype, channels: int = 3) -> torch.Tensor:
    """The 3x3 binomial kernel for a depthwise conv, made once per device: a fresh host->GPU copy per
    batch would wait for the queued kernels (a host sync)."""
    if (device, dtype, channels) not in _KERNELS:
        k = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
        k = (k[:, None] * k[None, :]) / 16.0
        _KERNELS[(device, dtype, channels)] = k.expand(channels, 1, 3, 3).contiguous().to(device, dtype)
    return _KERNELS[(device, dtype, channels)]


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def augment_batch(x: torch.Tensor, g: torch.Generator, strength: float = 1.0,
                  max_degrees: float = 2.0) -> torch.Tensor:
    """x: float images in [0, 1], NCHW. Returns a new tensor of the same shape.

    Colour jitter touches the first 3 channels only; a 4th and 5th (the detail map, core/detail_map.py) are
    no colour, but they are blurred and turned with the card so they stay on the lines they mark."""
    n, device, channels = x.shape[0], x.device, x.shape[1]
    s = strength
    x, extra = x[:, :3], x[:, 3:]
    # Colour: brightness, contrast, saturation per image.
    bright = _uniform(n, 1 - 0.15 * s, 1 + 0.15 * s, g, device).view(n, 1, 1, 1)
    contrast = _uniform(n, 1 - 0.15 * s, 1 + 0.15 * s, g, device).view(n, 1, 1, 1)
    sat = _uniform(n, 1 - 0.15 * s, 1 + 0.15 * s, g, device).view(n, 1, 1, 1)
    x = x * bright
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * sat + gray
    x = torch.cat([x, extra], dim=1) if channels > 3 else x
    # Light blur on about a fifth of the batch (scanner focus).
    blur = torch.rand(n, generator=g, device=device) < 0.2 * s
    kernel = _blur_kernel(device, x.dtype, channels)
    if device.type == "cpu":
        # Blur only the chosen images: the depthwise conv is the costliest op here on a CPU, and
        # finding the chosen ones (nonzero) costs nothing without a device to wait for.
        chosen = blur.nonzero().squeeze(1)
        if chosen.numel():
            x = x.index_copy(0, chosen, F.conv2d(x.index_select(0, chosen), kernel, padding=1, groups=channels))
    else:
        # On a GPU the conv over the whole batch is cheap, and nonzero() would be a host sync.
        x = torch.where(blur.view(n, 1, 1, 1), F.conv2d(x, kernel, padding=1, groups=channels), x)
    # Small rotation of the whole card; padding shows the grey "scanner" background.
    if max_degrees > 0:
        angle = _uniform(n, -max_degrees * s, max_degrees * s, g, device) * math.pi / 180.0
        cos, sin = torch.cos(angle), torch.sin(angle)
        zeros = torch.zeros_like(cos)
        h, w = x.shape[-2:]
        # affine_grid works in [-1, 1] on both axes: scale by the aspect so a rotation stays a rotation.
        theta = torch.stack([torch.stack([cos, -sin * h / w, zeros], 1),
                             torch.stack([sin * w / h, cos, zeros], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        # Colours are shifted by -0.5 so the zero padding shows as grey; a detail channel pads with 0 (no line).
        shift = x.new_tensor([0.5] * 3 + [0.0] * (channels - 3)).view(1, channels, 1, 1)
        x = F.grid_sample(x - shift, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + shift
    return x.clamp_(0.0, 1.0)
