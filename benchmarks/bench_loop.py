"""Training-loop speed, side by side: the bare limit, core.train's Trainer and PyTorch Lightning.

All three train the same DualBranchGrader (phase 2: both branches) with the same batch, image size,
precision, loss (core.losses.grading_loss), gradient clipping and AdamW, in one process, alternating
(bare core lightning, then core lightning bare, ...: rotated each repeat) so that load from other
processes hits them alike; medians over the repeats. Each rate is given per wall second and per CPU
second of this process.
  bare       forward + loss + backward + clip + AdamW on batches preloaded on the device (uint8,
             normalised on the device like the trainer does): the most any loop can reach.
  core       core.train.Trainer.train_epoch (phase 2) on real JPEG cards from disk through the warm uint8
             cache: its DataLoader, on-device normalisation, AMP, clipping, LR schedule, bookkeeping.
  lightning  lightning.Trainer.fit on the same cached CardDataset (same loss, clipping, AdamW, cosine
             schedule); timed from its epoch start to its epoch end.
  core+aug   (optional) the core loop with data.augment on, the presets' default: the price of
             augmentation, shown for information (the targets compare like with like).

Usage: python benchmarks/bench_loop.py [--quick] [--device cpu|cuda] [--backbone resnet18] [--repeats 5]
`--device cuda` also reports GPU utilisation and the model's achieved TFLOP/s against the GPU's peak.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_KEYS = ("grade", "edge", "edge_mask", "centering", "center_mask")
SIDES = ("front", "back")  # phase 2: both branches

# Dense (no sparsity) peak TFLOP/s from the vendors' data sheets. fp32 is the non-tensor-core rate.
PEAK_TFLOPS = (  # (name fragment, {precision: TFLOP/s}); the first match wins, so specific names first
    ("H200", {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0}),
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "fp32": 51.0}),
    ("H100", {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0}),
    ("A100", {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5}),
    ("L4", {"bf16": 121.0, "fp16": 121.0, "fp32": 30.3}),
    ("V100", {"fp16": 125.0, "fp32": 15.7}),
    ("T4", {"fp16": 65.0, "fp32": 8.1}),
)


CUDA_STEPS, CUDA_CARDS = 40, 1700


@dataclass
class Setup:
    backbone: str = "mobilenet_v3_small"
    width: int = 128
    height: int = 176
    batch_size: int = 32
    precision: str = "auto"       # auto: measured on CPU (fp32 vs bf16), bf16/fp16 on CUDA
    steps: int = 6                # optimizer steps per measurement
    warmup: int = 2               # steps before the first measurement (not timed)
    repeats: int = 5
    workers: int = 0              # DataLoader workers for core and lightning (the local preset's 0)
    cards: int = 400              # synthetic cards generated for the benchmark (80% train)
    data_dir: str = "data/bench"
    device: str = "cpu"
    threads: int = 0              # torch intra-op threads (0 = torch's default)
    compile: bool = False
    augment_row: bool = True
    lightning: bool = True
    seed: int = 0
    json_path: str = ""


def parse_args(argv: list[str] | None = None) -> Setup:
    d = Setup()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default=d.backbone)
    p.add_argument("--image-size", default=f"{d.width}x{d.height}", help="WIDTHxHEIGHT (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--precision", default=d.precision, choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--steps", type=int, default=None,
                   help=f"optimizer steps per measurement (default {d.steps} on CPU, {CUDA_STEPS} on CUDA)")
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--repeats", type=int, default=d.repeats)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--cards", type=int, default=None,
                   help=f"synthetic cards, 80%% train (default {d.cards} on CPU, {CUDA_CARDS} on CUDA)")
    p.add_argument("--data-dir", default=d.data_dir, help="synthetic set and cache (generated once)")
    p.add_argument("--device", default=d.device, choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--compile", action="store_true", help="model.compile for core, torch.compile for all")
    p.add_argument("--no-augment-row", dest="augment_row", action="store_false")
    p.add_argument("--no-lightning", dest="lightning", action="store_false")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, measures nothing")
    p.add_argument("--json", dest="json_path", default="", help="also write the results as JSON here")
    a = p.parse_args(argv)
    try:
        w, h = (int(v) for v in a.image_size.lower().split("x"))
    except ValueError:
        p.error(f"--image-size {a.image_size!r}: expected WIDTHxHEIGHT, e.g. 128x176")
    cuda = a.device == "cuda"  # GPU steps take milliseconds: measure more of them
    steps = a.steps if a.steps is not None else (CUDA_STEPS if cuda else d.steps)
    cards = a.cards if a.cards is not None else (CUDA_CARDS if cuda else d.cards)
    s = Setup(a.backbone, w, h, a.batch_size, a.precision, steps, a.warmup, a.repeats, a.workers, cards,
              a.data_dir, a.device, a.threads, a.compile, a.augment_row, a.lightning, json_path=a.json_path)
    if a.quick:
        s = quick(s)
    for name in ("steps", "repeats", "batch_size", "cards"):
        if getattr(s, name) < 1:
            p.error(f"--{name.replace('_', '-')} {getattr(s, name)}: expected at least 1")
    if s.cards * 0.8 < s.batch_size * s.steps:
        p.error(f"--cards {s.cards}: the train split (80%) must hold --steps x --batch-size = "
                f"{s.steps * s.batch_size} cards")
    return s


def quick(s: Setup) -> Setup:
    """Sizes that only prove the script works (seconds, numbers meaningless)."""
    return replace(s, width=48, height=64, batch_size=8, precision="fp32" if s.precision == "auto" else s.precision,
                   steps=2, warmup=1, repeats=1, cards=40, data_dir=s.data_dir + "-quick", augment_row=False)


# ------------------------------------------------------------------------------------------ data
def prepare_data(data_dir: str | Path, cards: int, seed: int = 0) -> Path:
    """The benchmark's synthetic JPEG set (generated once; regenerated when the card count changes)."""
    from core.records import load_splits
    from core.synth import generate

    out = Path(data_dir)
    splits = out / "splits.json"
    if splits.exists():
        s = load_splits(splits)
        if len(s.train) + len(s.val) + len(s.test) == cards:
            return splits
        shutil.rmtree(out)
    return generate(out, cards, seed)


def cache_dir_of(data_dir: str | Path) -> Path:
    return Path(data_dir) / "cache"


def warm_cache(s: Setup, splits: Path) -> None:
    """Build the train split's uint8 cache the way the Trainer does (same key), so every loop reads it warm."""
    from core.data import UInt8Cache
    from core.records import load_splits

    UInt8Cache(load_splits(splits).train, (s.width, s.height), SIDES, str(cache_dir_of(s.data_dir))).ensure()


def core_overrides(s: Setup, splits: Path, out_dir: Path, precision: str, augment: bool) -> list[str]:
    return [f"data.splits={splits}", "data.synthetic=false", f"data.image_size=[{s.width},{s.height}]",
            "data.cache=true", f"data.cache_dir={cache_dir_of(s.data_dir)}", f"data.num_workers={s.workers}",
            f"data.augment={str(augment).lower()}", f"model.backbone={s.backbone}", "model.channels_last=true",
            f"model.compile={str(s.compile).lower()}", f"training.batch_size={s.batch_size}",
            f"training.precision={precision}", "training.phase1_epochs=0", "training.phase2_epochs=1",
            f"training.max_steps_per_epoch={s.steps}", "training.warmup_ratio=0", f"training.seed={s.seed}",
            "early_stopping.enabled=false", f"output.dir={out_dir}", "output.save_every=0"]


def amp_dtype(precision: str):
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


# ----------------------------------------------------------------------------------------- loops
class BareLoop:
    """The limit: no data loading, no bookkeeping; the same math as one core training step."""

    name = "bare"

    def __init__(self, s: Setup, splits: Path, precision: str, n_batches: int = 4):
        import numpy as np
        import torch

        from core.data import UInt8Cache, labels_of
        from core.losses import grading_loss
        from core.model import DualBranchGrader
        from core.records import load_splits

        self.s, self.torch, self.grading_loss = s, torch, grading_loss
        self.device = torch.device(s.device)
        self.dtype = amp_dtype(precision)
        records = load_splits(splits).train
        cache = UInt8Cache(records, (s.width, s.height), SIDES, str(cache_dir_of(s.data_dir))).ensure()
        self.batches = []
        for i in range(n_batches):
            lo = (i * s.batch_size) % max(1, len(records) - s.batch_size)
            block = torch.from_numpy(np.array(cache.array[lo:lo + s.batch_size]))  # [B, S, H, W, 3] uint8
            batch = {side: block[:, j].permute(0, 3, 1, 2).contiguous().to(self.device)  # like the collate
                     for j, side in enumerate(SIDES)}
            labels = [labels_of(r) for r in records[lo:lo + s.batch_size]]
            batch.update({k: torch.stack([lab[k] for lab in labels]).to(self.device) for k in TARGET_KEYS})
            self.batches.append(batch)
        self.model = DualBranchGrader(s.backbone).to(self.device).to(memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if s.compile else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.01,
                                           fused=self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.i = 0
        self.step(warm=s.warmup)

    def loss(self, batch):
        from core.data import normalize_on_device

        torch = self.torch
        inputs = {side: normalize_on_device(batch[side], True) for side in SIDES}
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            outputs = self.net(**inputs)
        return self.grading_loss(outputs, batch, 0.7, 0.05, 0.1)[0]

    def step(self, warm: int = 1) -> None:
        for _ in range(warm):
            batch = self.batches[self.i % len(self.batches)]
            self.i += 1
            self.scaler.scale(self.loss(batch)).backward()
            self.scaler.unscale_(self.optimizer)
            self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)

    def measure(self) -> tuple[float, float]:
        sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        self.step(self.s.steps)
        sync(self.device)
        return rates(self.s.steps * self.s.batch_size, t0, c0)

    def flops_per_sample(self) -> float:
        """Forward + backward FLOPs of one batch, counted by torch's FlopCounterMode, per sample."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self.loss(self.batches[0]).backward()
        self.optimizer.zero_grad(set_to_none=True)
        return counter.get_total_flops() / self.s.batch_size


class CoreLoop:
    """core.train.Trainer's real epoch loop (Trainer.train_epoch): its DataLoader over the cached JPEG set,
    on-device normalisation (and augmentation for core+aug), AMP, clipping, the LR schedule, the
    preemption check and its bookkeeping. The phase plan is built as Trainer.train_phase builds it;
    evaluation and checkpoints between epochs are not part of the training rate and are left out."""

    def __init__(self, s: Setup, splits: Path, precision: str, augment: bool, work: Path):
        from core.config import load_preset
        from core.data import train_loader
        from core.early_stopping import EarlyStopping
        from core.events import EventWriter
        from core import distributed
        from core.sampling import EpochOrder
        from core.schedulers import make_optimizer_and_scheduler
        from core.train import PhasePlan, Trainer

        self.s, self.name = s, "core+aug" if augment else "core"
        cfg = load_preset("local", core_overrides(s, splits, work / self.name, precision, augment))
        tr = self.trainer = Trainer(cfg, log_format="json")
        tr.events = EventWriter("json", enabled=False)  # the benchmark prints its own table
        tr.setup()
        sides = ("front", "back")
        # Phase 2's optimizer and schedule as Trainer.train_phase builds them, over an endless phase with no
        # warm-up: the LR barely moves during the measured epochs.
        optimizer, scheduler = make_optimizer_and_scheduler(tr.model, cfg.training, cfg.training.lr_phase2, 10 ** 6,
                                                            tr.device, warmup_steps=0)
        stopper = EarlyStopping(enabled=False)
        order = EpochOrder()
        loader = train_loader(tr.datasets["train"][sides], order, cfg, tr.device)
        net = distributed.wrap_model(tr.model, False, tr.device)
        self.plan = PhasePlan(2, sides, 10 ** 6, s.steps, net, optimizer, scheduler, stopper, order, loader)
        self.epoch = 0
        self.measure()  # warm-up epoch (the first one also pays for persistent workers' start)

    def measure(self) -> tuple[float, float]:
        from core.train import Position

        self.epoch += 1
        self.trainer.pos = Position(phase=2, epoch=self.epoch)
        t0, c0 = time.perf_counter(), time.process_time()
        self.trainer.train_epoch(self.plan)
        sync(self.trainer.device)
        return rates(self.s.steps * self.s.batch_size, t0, c0)


class LightningLoop:
    """The same model, loss, optimizer, clipping and cached data under lightning.Trainer."""

    name = "lightning"

    def __init__(self, s: Setup, splits: Path, precision: str, work: Path):
        import torch

        from core.data import CardDataset, UInt8Cache
        from core.records import load_splits

        self.s, self.work = s, work
        self.precision = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}[precision]
        records = load_splits(splits).train
        cache = UInt8Cache(records, (s.width, s.height), SIDES, str(cache_dir_of(s.data_dir))).ensure()
        dataset = CardDataset(records, (s.width, s.height), SIDES, cache)
        cuda = s.device == "cuda"
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=s.batch_size, shuffle=True, drop_last=True, num_workers=s.workers,
            pin_memory=cuda, persistent_workers=s.workers > 0, prefetch_factor=2 if s.workers else None)
        self.module = _lightning_module(s)
        for name in ("lightning.pytorch", "lightning.fabric"):  # its banners would bury the table
            logging.getLogger(name).setLevel(logging.ERROR)
        self.measure()  # warm-up

    def measure(self) -> tuple[float, float]:
        import lightning as L

        timer = _EpochTimer()
        trainer = L.Trainer(
            accelerator="gpu" if self.s.device == "cuda" else "cpu", devices=1, precision=self.precision,
            max_epochs=1, max_steps=self.s.steps, limit_train_batches=self.s.steps, limit_val_batches=0,
            num_sanity_val_steps=0, gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
            default_root_dir=str(self.work / "lightning"))
        trainer.fit(self.module, train_dataloaders=self.loader)
        return timer.samples / max(timer.t1 - timer.t0, 1e-9), timer.samples / max(timer.c1 - timer.c0, 1e-9)


def _lightning_module(s: Setup):
    import lightning as L
    import torch

    from core.data import normalize_on_device
    from core.losses import grading_loss
    from core.model import DualBranchGrader
    from core.schedulers import get_scheduler

    class LitGrader(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = DualBranchGrader(s.backbone).to(memory_format=torch.channels_last)
            self.net = torch.compile(self.model) if s.compile else self.model

        def training_step(self, batch, batch_idx):
            inputs = {side: normalize_on_device(batch[side], True) for side in SIDES}
            outputs = self.net(**inputs)  # Lightning's precision plugin wraps this in autocast
            return grading_loss(outputs, batch, 0.7, 0.05, 0.1)[0]

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.01,
                                    fused=s.device == "cuda")
            sched = get_scheduler("cosine", opt, 0, 10 ** 6)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return LitGrader()


class _EpochTimer:
    """Lightning callback (duck-typed: Lightning calls the hooks it finds)."""

    def __new__(cls):
        import lightning as L

        class Timer(L.Callback):
            def __init__(self):
                self.t0 = self.t1 = self.c0 = self.c1 = 0.0
                self.samples = 0

            def on_train_epoch_start(self, trainer, pl_module):
                self.t0, self.c0 = time.perf_counter(), time.process_time()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                self.samples += len(batch["grade"])

            def on_train_epoch_end(self, trainer, pl_module):
                sync(pl_module.device)  # once, like the core and bare timings: no per-step sync
                self.t1, self.c1 = time.perf_counter(), time.process_time()

        return Timer()


# ---------------------------------------------------------------------------------------- device
def rates(samples: int, t0: float, c0: float) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second of this process) since perf_counter t0 and
    process_time c0. The CPU rate shrugs off other processes' load when torch runs one thread."""
    return (samples / max(time.perf_counter() - t0, 1e-9), samples / max(time.process_time() - c0, 1e-9))


def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def gpu_utilization() -> float | None:
    """Percent of the last sample period the GPU was busy (NVML via torch, else nvidia-smi)."""
    import torch

    try:
        return float(torch.cuda.utilization())
    except Exception:  # torch needs pynvml for this; fall back to the CLI
        pass
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                              "-i", str(torch.cuda.current_device())], capture_output=True, text=True,
                             timeout=5, check=True).stdout
        return float(out.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


class UtilSampler:
    """Polls GPU utilisation in a thread while a measurement runs; `mean` afterwards."""

    def __init__(self, enabled: bool, period_s: float = 0.1):
        self.enabled, self.period_s, self.samples = enabled, period_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            u = gpu_utilization()
            if u is not None:
                self.samples.append(u)

    def __enter__(self):
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


def peak_tflops(device_name: str, precision: str) -> float | None:
    for fragment, peaks in PEAK_TFLOPS:
        if fragment.lower() in device_name.lower():
            return peaks.get(precision)
    return None


def choose_precision(s: Setup, splits: Path) -> tuple[str, dict]:
    """`auto`: on CUDA bf16 where supported, else fp16; on CPU the faster of fp32 and bf16, measured
    on the bare loop (docs/design.md §9: bf16 helps resnet18 4-8x on this CPU, mobilenet_v3 prefers fp32)."""
    import torch

    if s.precision != "auto":
        return s.precision, {}
    if s.device == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), {}
    probe = replace(s, steps=3, warmup=1)
    measured = {name: BareLoop(probe, splits, name, n_batches=2).measure()[0] for name in ("fp32", "bf16")}
    return max(measured, key=measured.get), measured


# ------------------------------------------------------------------------------------------- run
def run(s: Setup, log=print) -> dict:
    import torch

    if s.threads:
        torch.set_num_threads(s.threads)
    if s.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible to torch")
        torch.backends.cudnn.benchmark = True  # as the Trainer sets it, for every loop alike
    warnings.filterwarnings("ignore")  # Lightning's advice about workers and loggers is not the result
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    splits = prepare_data(s.data_dir, s.cards, s.seed)
    work = Path(s.data_dir) / "runs"
    log(f"bench_loop: {s.backbone} {s.width}x{s.height} batch {s.batch_size} on {s.device}, "
        f"{s.steps} steps x {s.repeats} repeats")
    warm_cache(s, splits)
    precision, probe = choose_precision(s, splits)
    if probe:
        log("precision probe (bare loop): " + ", ".join(f"{k} {v:.1f} samples/s" for k, v in probe.items())
            + f" -> {precision}")
    loops: list = [BareLoop(s, splits, precision), CoreLoop(s, splits, precision, False, work)]
    if s.lightning:
        loops.append(LightningLoop(s, splits, precision, work))
    if s.augment_row:
        loops.append(CoreLoop(s, splits, precision, True, work))
    wall: dict[str, list[float]] = {loop.name: [] for loop in loops}
    cpu: dict[str, list[float]] = {loop.name: [] for loop in loops}
    util: dict[str, list[float]] = {loop.name: [] for loop in loops}
    for r in range(s.repeats):
        # Alternating, and rotated each repeat (A B C, B C A, C A B, ...) so that no loop always runs
        # right after the same neighbour: a slow or a warm slot then falls on each of them in turn.
        for loop in loops[r % len(loops):] + loops[:r % len(loops)]:
            with UtilSampler(s.device == "cuda") as sampler:
                w, c = loop.measure()
            wall[loop.name].append(w)
            cpu[loop.name].append(c)
            if sampler.mean is not None:
                util[loop.name].append(sampler.mean)
        log(f"  repeat {r + 1}/{s.repeats}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in wall.items()))
    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    result = {"setup": asdict(s), "precision": precision, "precision_probe": probe,
              "samples_per_s": wall, "median": med, "cpu_samples_per_s": cpu, "cpu_median": cpu_med,
              "core_over_bare": med["core"] / med["bare"],
              "core_over_lightning": med["core"] / med["lightning"] if "lightning" in med else None,
              "cpu_core_over_bare": cpu_med["core"] / cpu_med["bare"],
              "cpu_core_over_lightning": cpu_med["core"] / cpu_med["lightning"] if "lightning" in med else None,
              "load_before": load_before, "load_after": os.getloadavg(), "cpu_count": os.cpu_count(),
              "threads": torch.get_num_threads(), "wall_s": time.perf_counter() - t_start,
              "torch": torch.__version__, "lightning": _lightning_version() if s.lightning else None}
    if s.device == "cuda":
        name = torch.cuda.get_device_name()
        fps = loops[0].flops_per_sample()
        peak = peak_tflops(name, precision)
        result["gpu"] = {
            "name": name, "flops_per_sample": fps, "peak_tflops": peak,
            "utilization": {k: (statistics.median(v) if v else None) for k, v in util.items()},
            "tflops": {k: fps * v / 1e12 for k, v in med.items()},
        }
    return result


def _lightning_version() -> str:
    import lightning

    return lightning.__version__


def format_table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (pastes into benchmarks/README.md as is)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells[1:]])


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} ({'meets' if value >= target else 'below'} target >= {target:g})"


def report(result: dict) -> str:
    med, wall, cpu_med = result["median"], result["samples_per_s"], result["cpu_median"]
    gpu = result.get("gpu")
    headers = ["loop", "median samples/s", "runs (wall)", "vs bare", "samples per CPU-s", "vs bare (CPU)"]
    if gpu:
        headers += ["GPU util %", "TFLOP/s", "of peak"]
    rows = []
    for name, m in med.items():
        row = [name, f"{m:.1f}", " ".join(f"{v:.1f}" for v in wall[name]), f"{m / med['bare']:.3f}",
               f"{cpu_med[name]:.1f}", f"{cpu_med[name] / cpu_med['bare']:.3f}"]
        if gpu:
            u = gpu["utilization"].get(name)
            tf = gpu["tflops"][name]
            row += ["-" if u is None else f"{u:.0f}", f"{tf:.2f}",
                    "-" if not gpu["peak_tflops"] else f"{100 * tf / gpu['peak_tflops']:.1f}%"]
        rows.append(row)
    s = result["setup"]
    lines = [f"{s['backbone']} x2, {s['width']}x{s['height']}, batch {s['batch_size']}, {result['precision']}, "
             f"{s['device']}, {s['steps']} steps/measurement, {s['repeats']} repeats, workers {s['workers']}, "
             f"torch threads {result['threads']}",
             format_table(headers, rows),
             f"core / bare      = {verdict(result['core_over_bare'], 0.95)}; "
             f"per CPU-second {result['cpu_core_over_bare']:.3f}",
             f"core / lightning = {verdict(result['core_over_lightning'], 1.0)}"
             + ("" if result["cpu_core_over_lightning"] is None
                else f"; per CPU-second {result['cpu_core_over_lightning']:.3f}"),
             f"load average {result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after "
             f"({result['cpu_count']} cores); {result['wall_s']:.0f} s"]
    if result["precision_probe"]:
        lines.insert(1, "precision probe: " + ", ".join(f"{k} {v:.1f} samples/s"
                                                        for k, v in result["precision_probe"].items()))
    if gpu:
        lines.append(f"{gpu['name']}: {gpu['flops_per_sample'] / 1e9:.2f} GFLOP per sample (fwd+bwd), peak "
                     f"{gpu['peak_tflops'] or 'unknown'} TFLOP/s {result['precision']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    if s.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the Trainer takes a GPU whenever it sees one
    result = run(s, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(report(result))
    if s.json_path:
        Path(s.json_path).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
