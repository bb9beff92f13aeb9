"""Fixtures for the training core: a smoke-sized synthetic card set, generated once per session."""
import pytest

from core.config import load_preset
from core.synth import generate


@pytest.fixture(scope="session")
def smoke_splits(tmp_path_factory):
    """splits.json of the smoke preset's synthetic set (the same cards as presets/smoke.toml)."""
    d = load_preset("smoke").data
    out = tmp_path_factory.mktemp("smoke-data")
    return generate(out, d.synthetic_n, d.synthetic_seed, size=tuple(d.synthetic_size))


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Keep the uint8 image cache out of the user's ~/.cache during tests."""
    monkeypatch.setenv("PSA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "psa-cache"))


def export_random_model(model_dir, sides=("front", "back"), backbone="resnet18", image_size=(48, 64),
                        criteria=False):
    """A randomly initialised (seeded) exported model: what serving and prediction tests grade with.

    resnet18, not mobilenet: an untrained mobilenet_v3_small answers every image alike.
    """
    import torch

    from core.export import export_model
    from core.model import DualBranchGrader

    torch.manual_seed(0)
    export_model(DualBranchGrader(backbone=backbone, criteria=criteria), str(model_dir),
                 {"image_size": list(image_size), "sides": list(sides)})
    return str(model_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """An exported front+back model, smoke-sized, random weights (no training)."""
    return export_random_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def card_scans(tmp_path_factory):
    """Two (front, back) JPEG scans of synthetic cards, as paths; their bytes are what a client uploads."""
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(2):
        pair = []
        for side in ("front", "back"):
            p = d / f"card{i}_{side}.jpg"
            pixels = (rng.random((70, 50, 3)) * (120 + 100 * i)).astype(np.uint8)  # card 1 brighter
            Image.fromarray(pixels).save(p, quality=90)
            pair.append(str(p))
        paths.append(tuple(pair))
    return paths
