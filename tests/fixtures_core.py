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
