"""model.weights = "imagenet": torchvision's default weights from the torch cache, never a silent download
in tests (a planted file in a temporary TORCH_HOME), and one line saying how to get them when offline."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from core.model import DualBranchGrader
from core.weights import WeightsError, imagenet_file

ROOT = Path(__file__).resolve().parent.parent
SMALL = "mobilenet_v3_small"
# A closed port on loopback as the proxy: any download attempt fails at once, deterministically.
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": ""}


def _plant(torch_home: Path, backbone: str = SMALL) -> tuple[Path, dict]:
    name = os.path.basename(torchvision.models.get_model_weights(backbone).DEFAULT.url)
    path = torch_home / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True)
    torch.manual_seed(7)
    state = getattr(torchvision.models, backbone)(weights=None).state_dict()
    torch.save(state, path)
    return path, state


def test_imagenet_weights_come_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    path, state = _plant(tmp_path)
    assert imagenet_file(SMALL) == str(path)
    model = DualBranchGrader(SMALL, weights="imagenet")
    for branch in (model.back, model.front):
        own = branch.backbone.state_dict()
        assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("classifier.3."))


def test_offline_without_the_file_fails_with_one_line_saying_how(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(WeightsError) as err:
        imagenet_file(SMALL)
    message = str(err.value)
    assert "\n" not in message and "python -m core.weights mobilenet_v3_small" in message
    assert not list(tmp_path.rglob("*.pth"))  # nothing half-written left in the cache


def test_training_offline_exits_2_with_that_line(tmp_path, smoke_splits):
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), **OFFLINE}
    proc = subprocess.run([sys.executable, "-m", "core.train", "--preset", "smoke", "--output-dir", str(tmp_path / "o"),
                           "--set", f"data.splits={smoke_splits}", "--set", "model.weights=imagenet"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "python -m core.weights mobilenet_v3_small" in proc.stderr.strip().splitlines()[-1]


def test_weights_cli_prints_the_cached_file(tmp_path):
    path, _ = _plant(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "core.weights", SMALL], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TORCH_HOME": str(tmp_path), **OFFLINE}, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == str(path)
