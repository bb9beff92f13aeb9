"""How long preemption takes for the cloud preset's model: checkpoint save time and signal-to-saved time.

1. save: the full training state the trainer writes (model, AdamW moments, scheduler, scaler, early
   stopping, position, RNG states, config) for the cloud preset's dual resnet50, through
   core.checkpoint.save (temp file, fsync, zip CRC check, os.replace); with --gcs also to a fresh
   fake-gcs-server on 127.0.0.1 (local write, then upload to a temp object, verify, rewrite). Also the
   load time a resume pays.
2. signal-to-saved: `python -m core.train --preset cloud` on tiny synthetic data (the smoke card set)
   at the cloud preset's image size, SIGTERM once the first step line appears, and the `preempted`
   line's signal_to_saved_s / save_s. It includes finishing the step in progress: on a CPU a resnet50
   step is seconds long, on a GPU it is milliseconds, so there it is about the save time.

A Spot VM has about 30 s from the signal to power-off (docs/design.md §5); both numbers must stay well under.
Usage: python benchmarks/checkpoint_timing.py [--repeats 3] [--gcs] [--skip-signal] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core import checkpoint  # noqa: E402
from core.config import load_preset  # noqa: E402
from core.early_stopping import EarlyStopping  # noqa: E402
from core.model import DualBranchGrader  # noqa: E402
from core.schedulers import get_scheduler  # noqa: E402


def training_state(device: str) -> tuple[dict, int]:
    """The state core.train saves for the cloud preset, with AdamW moments filled (as after step 1)."""
    cfg = load_preset("cloud")
    t = cfg.training
    model = DualBranchGrader(cfg.model.backbone, "", cfg.model.lambda_fusion, cfg.model.dropout).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.lr_phase2, weight_decay=t.weight_decay)
    for p in params:  # one step on zero gradients creates exp_avg / exp_avg_sq for every parameter
        p.grad = torch.zeros_like(p)
    optimizer.step()
    scheduler = get_scheduler(t.scheduler, optimizer, 10, 1000)
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": torch.amp.GradScaler(enabled=False).state_dict(),
        "early_stopping": EarlyStopping().state_dict(),
        "position": {"phase": 2, "epoch": 3, "batches_done": 100, "global_step": 1000, "phase_step": 700,
                     "loss_sum": 12.5, "loss_count": 100},
        "global_step": 1000, "rng": [{"torch": torch.get_rng_state()}],
        "model_signature": {**model.config(), "image_size": list(cfg.data.image_size)},
        "history": [], "config": cfg.to_dict(),
    }
    n_params = sum(p.numel() for p in model.parameters())
    return state, n_params


def time_saves(state: dict, dest_dir: str, repeats: int) -> dict:
    saves, loads = [], []
    path = f"{dest_dir.rstrip('/')}/last.pth"
    for _ in range(repeats):
        saves.append(checkpoint.save(state, path))
        t0 = time.perf_counter()
        checkpoint.load(path)
        loads.append(time.perf_counter() - t0)
    return {"save_s": saves, "load_s": loads}


def signal_to_saved(device: str, timeout_s: float = 900) -> dict:
    """One cloud-preset run on the smoke cards, SIGTERM at the first step line; the preempted line."""
    from core.synth import generate

    smoke = load_preset("smoke").data
    with tempfile.TemporaryDirectory(prefix="psa-bench-") as tmp:
        splits = generate(Path(tmp) / "data", smoke.synthetic_n, smoke.synthetic_seed, size=(224, 320))
        cmd = [sys.executable, "-m", "core.train", "--preset", "cloud", "--log-format", "json",
               "--output-dir", f"{tmp}/out", "--set", f"data.splits={splits}", "--set", "data.num_workers=0",
               "--set", "training.batch_size=8", "--set", "training.log_every_steps=1",
               "--set", "output.resume=none"]
        env = {**os.environ, "PSA_CACHE_DIR": f"{tmp}/cache"}
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        deadline, preempted, first_steps = time.monotonic() + timeout_s, None, []
        try:
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                event = json.loads(line)
                if event["event"] == "step" and not first_steps:
                    first_steps.append(time.perf_counter())
                    proc.send_signal(signal.SIGTERM)
                elif event["event"] == "preempted":
                    preempted = event
                if time.monotonic() > deadline:
                    break
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if preempted is None:
            raise SystemExit(f"no preempted line (exit {code}): {proc.stderr.read()[-2000:]}")
        return {"exit_code": code, "signal_to_saved_s": preempted["signal_to_saved_s"],
                "save_s": preempted["save_s"], "step": preempted["step"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gcs", action="store_true", help="also save to a fake-gcs-server on 127.0.0.1")
    ap.add_argument("--skip-signal", action="store_true", help="only time the saves")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    state, n_params = training_state(args.device)
    size_mb = None
    with tempfile.TemporaryDirectory(prefix="psa-ckpt-bench-") as tmp:
        local = time_saves(state, tmp, args.repeats)
        size_mb = os.path.getsize(f"{tmp}/last.pth") / 2**20
    report = {"device": args.device, "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
              "params_m": round(n_params / 1e6, 1), "checkpoint_mb": round(size_mb, 1),
              "local_save_s": _summary(local["save_s"]), "local_load_s": _summary(local["load_s"])}
    if args.gcs:
        from tests.fakes.gcs_server import create_bucket, start_fake_gcs

        with tempfile.TemporaryDirectory(prefix="psa-fake-gcs-") as tmp:
            url, stop = start_fake_gcs(tmp)
            try:
                os.environ["STORAGE_EMULATOR_HOST"] = url
                create_bucket(url, "bench")
                gcs = time_saves(state, "gs://bench/ckpt", args.repeats)
                report["fake_gcs_save_s"] = _summary(gcs["save_s"])
                report["fake_gcs_load_s"] = _summary(gcs["load_s"])
            finally:
                stop()
    if not args.skip_signal:
        report["sigterm"] = signal_to_saved(args.device)
    print(json.dumps(report, indent=2))


def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


if __name__ == "__main__":
    main()
