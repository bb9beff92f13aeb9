"""Fixtures for the offline cockpit tests (presets, catalog, image, local runs, CLI); registered in conftest.

- `docker_stub`: tests/bin first on PATH (the stand-in `docker`), its argv log, and its failure mode.
- `fake_trainer`: a command prefix for LocalBackend that behaves like `python -m core.train` in
  miniature (metric lines, exit codes, SIGTERM -> "preempted" + exit 75), steered by FAKE_TRAINER_MODE.
- `write_preset`: writes a TOML snippet to tmp_path and returns its path.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

TESTS_BIN = Path(__file__).resolve().parent / "bin"

FAKE_TRAINER = r'''
import argparse, json, os, signal, sys, time

p = argparse.ArgumentParser()
p.add_argument("--preset")
p.add_argument("--set", action="append", default=[])
p.add_argument("--output-dir")
args = p.parse_args()
out = args.output_dir
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "argv.json"), "w") as fh:
    json.dump(sys.argv[1:], fh)
mode = os.environ.get("FAKE_TRAINER_MODE", "ok")

def emit(event, message, severity="INFO", **fields):
    print(json.dumps({"severity": severity, "message": message, "event": event, "time": time.time(),
                      **fields}), flush=True)

def on_term(signum, frame):
    emit("preempted", "signal received: saved checkpoint", severity="WARNING")
    sys.exit(75)

if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)

emit("start", "training mobilenet_v3_small on 96 cards (cpu, fp32, world size 1)", device="cpu",
     backbone="mobilenet_v3_small", image_size=[48, 64])
print("plain text line from the trainer", flush=True)
if mode == "bad_input":
    print("error: splits.json: 3 images missing", file=sys.stderr, flush=True)
    sys.exit(2)
if mode == "crash":
    print("Traceback (most recent call last):", file=sys.stderr, flush=True)
    print("RuntimeError: boom", file=sys.stderr, flush=True)
    sys.exit(1)
if mode in ("slow", "stubborn"):
    epoch = 0
    while True:
        epoch += 1
        emit("epoch", f"epoch {epoch}", phase=1, epoch=epoch, samples_per_s=50.0)
        time.sleep(0.05)
emit("epoch", "epoch 1 phase 1", phase=1, epoch=1, step=6, train_loss=1.5, val_loss=1.4, val_qwk=0.2,
     val_mae=1.9, lr=0.003, samples_per_s=90.0)
emit("epoch", "epoch 1 phase 2", phase=2, epoch=1, step=12, train_loss=1.2, val_loss=1.1, val_qwk=0.41,
     val_mae=1.2, lr=0.002, samples_per_s=45.0)
model = os.path.join(out, "model")
os.makedirs(model, exist_ok=True)
with open(os.path.join(model, "psa_dual_branch_config.json"), "w") as fh:
    json.dump({"backbone": "mobilenet_v3_small"}, fh)
with open(os.path.join(model, "psa_dual_branch_state_dict.pth"), "wb") as fh:
    fh.write(b"weights")
emit("done", "test QWK 0.5000; model exported to " + model, export_path=model, test_qwk=0.5)
'''


@pytest.fixture
def docker_stub(tmp_path, monkeypatch):
    """The stand-in docker on PATH; `.calls()` returns the argv lists it received, `.mode(m)` sets
    DOCKER_STUB_MODE (ok, missing, daemon_down, auth, build_error, slow)."""
    log = tmp_path / "docker-argv.jsonl"
    monkeypatch.setenv("PATH", f"{TESTS_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("DOCKER_STUB_LOG", str(log))
    monkeypatch.setenv("DOCKER_STUB_MODE", "ok")
    monkeypatch.setenv("DOCKER_STUB_DELAY", "0.005")

    class Stub:
        path = TESTS_BIN / "docker"

        @staticmethod
        def calls() -> list[list[str]]:
            if not log.exists():
                return []
            return [json.loads(line) for line in log.read_text().splitlines()]

        @staticmethod
        def mode(name: str) -> None:
            monkeypatch.setenv("DOCKER_STUB_MODE", name)

    return Stub()


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch) -> list[str]:
    """Command prefix running the miniature trainer; FAKE_TRAINER_MODE = ok | bad_input | crash | slow |
    stubborn (ignores SIGTERM)."""
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    return [sys.executable, str(script)]


@pytest.fixture
def write_preset(tmp_path):
    """write_preset(text, name="p.toml") -> Path of a preset file holding the dedented text."""
    def write(text: str, name: str = "p.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path.resolve()
    return write
