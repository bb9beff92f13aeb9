"""`model.weights = "imagenet"`: torchvision's default ImageNet weights for a backbone, never fetched mid-run.

The file is looked up where torch keeps downloads ($TORCH_HOME/hub/checkpoints, by default
~/.cache/torch/hub/checkpoints). If it is missing it is downloaded once, with a progress bar; offline,
the run stops with one line saying how to get it. The training image downloads the cloud preset's
weights at build time (`python -m core.weights resnet50` in the Dockerfile), so a cloud job never
depends on the internet. Usage: python -m core.weights BACKBONE [BACKBONE ...]
"""
from __future__ import annotations

import os
import re
import sys
import urllib.error

import torch
import torchvision

IMAGENET = "imagenet"


class WeightsError(ValueError):
    """model.weights cannot be found, fetched or read, or is of another architecture; one line saying why."""


def _default_weights(backbone: str):
    try:
        return torchvision.models.get_model_weights(backbone).DEFAULT
    except (ValueError, AttributeError):
        raise WeightsError(f"model.weights = 'imagenet': torchvision has no ImageNet weights for {backbone}") from None


def imagenet_file(backbone: str, download: bool = True) -> str:
    """Path of the backbone's torchvision ImageNet weights in the torch cache; downloads them if missing."""
    url = _default_weights(backbone).url
    name = os.path.basename(url)
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(folder, name)
    if os.path.isfile(path):
        return path
    how = (f"run `python -m core.weights {backbone}` on a machine with internet and copy {name} to {folder} "
           f"(or set TORCH_HOME), or set model.weights to a local .pth")
    if not download:
        raise WeightsError(f"model.weights = 'imagenet': {path} is missing; {how}")
    os.makedirs(folder, exist_ok=True)
    match = re.search(r"-([a-f0-9]+)\.", name)  # torchvision names carry the sha256 prefix: checked on download
    try:
        torch.hub.download_url_to_file(url, path, hash_prefix=match.group(1) if match else None,
                                       progress=sys.stderr.isatty())
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"model.weights = 'imagenet': cannot download {url} ({reason}); {how}") from None
    return path


def main(argv: list[str] | None = None) -> int:
    backbones = sys.argv[1:] if argv is None else argv
    if not backbones:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        for backbone in backbones:
            print(imagenet_file(backbone))
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
