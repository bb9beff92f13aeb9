"""Time and cost estimate of a preset's run on its Vertex AI machine, before anything is submitted.

hours = training steps x step time on the target hardware. The step time starts from a measured
throughput (samples/s; a sample is one card, front + back) and says where it came from:
  1. the last local run's `epoch` metric lines (training.log / metrics.jsonl) with the same backbone and
     image size,
  2. else, when asked, a quick CPU benchmark of the model at the preset's image size,
  3. else the catalog's default per-backbone table (measured on a T4).
A CPU measurement is turned into target throughput with the catalog's rough relative-speed factors.
cost = (machine + GPUs) x replicas x hours, on-demand and spot side by side. A replica with N GPUs runs
N training processes (cockpit/vertex.py launch_command), so the job's world size is replicas x GPUs.
storage = what the run leaves in the bucket (checkpoints kept, the export, uploaded data) x the
catalog's Cloud Storage price, per month, beside the one-off compute cost.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import statistics
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from core.config import Config
from cockpit.catalog import Catalog
from cockpit.errors import CockpitError

LOG_NAMES = ("training.log", "metrics.jsonl")
PHASE1_COST = 0.5  # phase 1 trains the back branch only: about half the compute of phase 2
SYNTHETIC_TRAIN_SHARE, SYNTHETIC_VAL_SHARE = 0.8, 0.1
# Bytes per model parameter: fp32 weights; a training checkpoint adds AdamW's two fp32 moments.
WEIGHTS_BYTES_PER_PARAM, TRAINING_STATE_BYTES_PER_PARAM = 4, 12
GB = 1e9


@dataclass
class StepTime:
    """Measured phase-2 training throughput and what it was measured on."""
    samples_per_s: float
    device: str                            # "cpu" (this machine) or an accelerator enum (reference GPU)
    source: str                            # human-readable: where the number came from
    image_size: tuple[int, int] | None = None  # [width, height] it was measured at; None = the preset's
    cpu_cores: int = 2                     # cores of the measuring CPU (device "cpu")


@dataclass
class Estimate:
    hours: float
    on_demand_usd: float
    spot_usd: float
    hourly_on_demand: float      # all replicas together
    hourly_spot: float
    step_time_s: float           # seconds per training step of batch_size samples on the target
    steps: int                   # training steps of both phases (before early stopping)
    source: str                  # where the step time came from
    samples_per_s: float = 0.0   # phase-2 throughput on the target
    train_cards: int = 0
    val_cards: int = 0
    dataset_source: str = ""
    spot: bool = False           # whether the preset runs on Spot VMs
    target: str = ""             # "n1-standard-8 + 1 x NVIDIA_TESLA_T4, 1 replica, us-central1"
    price_source: str = ""
    notes: list[str] = field(default_factory=list)
    processes: int = 1           # training processes of the job: replicas x GPUs per replica
    storage: "StorageEstimate | None" = None

    @property
    def cost_usd(self) -> float:
        """What the job would pay: the spot figure for a spot preset, else on-demand."""
        return self.spot_usd if self.spot else self.on_demand_usd

    def exceeds(self, max_cost_usd: float) -> bool:
        """True when a cost limit is set (> 0) and the job's estimated cost is above it."""
        return max_cost_usd > 0 and self.cost_usd > max_cost_usd


@dataclass
class StorageEstimate:
    """What a run keeps in the bucket, and what that costs per month."""
    checkpoint_bytes: int
    export_bytes: int
    data_bytes: int
    usd_per_gb_month: float
    detail: str                  # how the checkpoint bytes add up
    data_source: str             # where the data size came from

    @property
    def total_gb(self) -> float:
        return (self.checkpoint_bytes + self.export_bytes + self.data_bytes) / GB

    @property
    def usd_per_month(self) -> float:
        return self.total_gb * self.usd_per_gb_month


# ---------------------------------------------------------------------------------------------------------
# Step time sources


def _read_events(path: Path) -> list[dict]:
    events = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(obj, dict) and isinstance(obj.get("event"), str):
                        events.append(obj)
    except OSError:
        return []
    return events


def _run_settings(run_dir: Path, events: list[dict]) -> dict[str, Any]:
    """backbone / image_size / device of a past run, from its `start` event or its saved config."""
    found: dict[str, Any] = {}
    for ev in events:
        if ev.get("event") != "start":
            continue
        cfg = ev.get("config") if isinstance(ev.get("config"), dict) else {}
        for key, section in (("backbone", "model"), ("image_size", "data")):
            nested = cfg.get(section) if isinstance(cfg.get(section), dict) else {}
            for value in (ev.get(key), cfg.get(key), nested.get(key)):
                if value is not None:
                    found[key] = value
                    break
        if ev.get("device") is not None:
            found["device"] = str(ev["device"])
    for name in ("config.toml", "config.json"):
        path = run_dir / name
        if ("backbone" in found and "image_size" in found) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text) if name.endswith(".json") else tomllib.loads(text)
        except (OSError, ValueError):
            continue
        for key, section in (("backbone", "model"), ("image_size", "data")):
            value = (raw.get(section) or {}).get(key)
            if value is not None:
                found.setdefault(key, value)
    return found


def _candidate_dirs(cfg: Config, runs_dir: Path | None) -> list[Path]:
    dirs = []
    if cfg.output.dir and not cfg.output.dir.startswith("gs://"):
        dirs.append(Path(cfg.output.dir))
    if runs_dir and runs_dir.is_dir():
        runs = [p for p in runs_dir.iterdir() if p.is_dir()]
        dirs += sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)
    return dirs


def step_time_from_runs(cfg: Config, runs_dir: Path | None = Path("outputs/runs")) -> StepTime | None:
    """Throughput from the newest local run of the same backbone and image size, or None.

    Looks at the preset's own output dir, then the LocalBackend run dirs (newest first). Phase-2 epoch
    lines are preferred (median, so a first epoch that filled the cache does not count alone); with
    only phase-1 lines, phase-2 throughput is taken as half (phase 1 runs one branch).
    """
    for run_dir in _candidate_dirs(cfg, runs_dir):
        for name in LOG_NAMES:
            log = run_dir / name
            if not log.is_file():
                continue
            events = _read_events(log)
            speeds = {1: [], 2: []}
            for ev in events:
                sps = ev.get("samples_per_s")
                if ev.get("event") == "epoch" and isinstance(sps, (int, float)) and sps > 0:
                    speeds[2 if ev.get("phase") == 2 else 1].append(float(sps))
            if not speeds[1] and not speeds[2]:
                continue
            settings = _run_settings(run_dir, events)
            if settings.get("device", "cpu").split(":")[0] != "cpu":
                continue  # measured on a GPU: the CPU-to-GPU factors do not apply
            if "backbone" in settings and settings["backbone"] != cfg.model.backbone:
                continue
            if "image_size" in settings and list(settings["image_size"]) != list(cfg.data.image_size):
                continue
            if not settings and run_dir != Path(cfg.output.dir):
                continue  # nothing says this run used the same model
            if speeds[2]:
                sps, how = statistics.median(speeds[2]), "phase 2"
            else:
                sps, how = statistics.median(speeds[1]) * PHASE1_COST, "phase 1 halved"
            return StepTime(sps, "cpu", f"last local run {_show(log)} ({sps:.0f} samples/s on CPU, {how})",
                            None, os.cpu_count() or 1)
    return None


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


BENCH_MAX_PIXELS = 128 * 176  # larger presets are timed at this size and scaled by pixels (1 / pixels)


def quick_benchmark(cfg: Config, steps: int = 3, batch_size: int = 2, time_limit_s: float = 4.0) -> StepTime:
    """A few phase-2 forward/backward steps of the model on this CPU (seconds, not minutes).

    Large images are timed at about 128x176 (same aspect) and the result is scaled by pixel count;
    small batches on a CPU carry more overhead per sample, so this errs towards a longer (dearer)
    estimate. Imports torch and core.model lazily (the CLI's start-up stays light); stops early past
    `time_limit_s`. Raises CockpitError when the model cannot be built.
    """
    try:
        import torch
        from core.model import DualBranchGrader
    except ImportError as exc:
        raise CockpitError(f"quick benchmark unavailable: {exc}") from None
    width, height = cfg.data.image_size
    shrink = min(1.0, (BENCH_MAX_PIXELS / (width * height)) ** 0.5)
    width, height = max(32, round(width * shrink)), max(32, round(height * shrink))
    torch.manual_seed(0)
    model = DualBranchGrader(cfg.model.backbone, weights="", lambda_fusion=cfg.model.lambda_fusion,
                             dropout=cfg.model.dropout)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    back = torch.rand(batch_size, 3, height, width)
    front = torch.rand(batch_size, 3, height, width)
    target = torch.randint(0, 10, (batch_size,))

    def one_step() -> None:
        logits = model(back, front)["logits"]
        loss = torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one_step()  # warm-up (not timed): allocator, kernel selection, lazy initialisation
    start, done = time.perf_counter(), 0
    while done < steps and (done == 0 or time.perf_counter() - start < time_limit_s):
        one_step()  # at least one timed step, more while within the time limit
        done += 1
    elapsed = time.perf_counter() - start
    sps = batch_size * done / elapsed
    return StepTime(sps, "cpu", f"quick local benchmark ({sps:.1f} samples/s on CPU at {width}x{height}, "
                                f"{done} x {batch_size} samples)", (width, height), torch.get_num_threads())


def default_step_time(cfg: Config, catalog: Catalog) -> StepTime:
    """The catalog's per-backbone T4 throughput (a rough default, no measurement)."""
    table = catalog.speed.t4_samples_per_s
    if cfg.model.backbone not in table:
        raise CockpitError(f"no default speed for backbone '{cfg.model.backbone}' in {catalog.path} "
                           f"[speed.t4_samples_per_s]; run it locally once or use --benchmark")
    sps = table[cfg.model.backbone]
    w, h = catalog.speed.reference_size
    return StepTime(sps, "NVIDIA_TESLA_T4",
                    f"default table ({cfg.model.backbone}: {sps:g} samples/s on a T4 at {w}x{h})", (w, h))


# ---------------------------------------------------------------------------------------------------------
# The estimate


_GCS_COUNTS: dict[str, tuple[float, int, int]] = {}  # gs:// splits -> (when counted, train, val)
GCS_COUNT_TTL_S = 300.0  # the TUI re-estimates on every edit: count a bucket's splits once a while


def _gcs_record_counts(cfg: Config, uri: str) -> tuple[int, int]:
    """Train and val records of a gs:// splits file; CockpitError (one line, why) when it cannot be read.

    The estimate never guesses here: a guess of synthetic_n cards for a real data set in a bucket could
    be off by orders of magnitude, and the budget guard would pass a job it should stop.
    """
    hit = _GCS_COUNTS.get(uri)
    if hit and time.monotonic() - hit[0] < GCS_COUNT_TTL_S:
        return hit[1], hit[2]
    from core import storage

    why = ""
    try:
        raw = json.loads(storage.read_bytes(uri))
        train, val = raw["train"], raw.get("val", [])
    except storage.StorageError as exc:
        why = str(exc)
    except (ValueError, KeyError, TypeError, AttributeError):
        why = "not a splits.json (docs/design.md §1)"
    if not why and not (isinstance(train, list) and isinstance(val, list)):
        why = "'train' and 'val' must be lists"
    if why:
        raise CockpitError(f"cannot estimate: data.splits = {uri} could not be read to count its records "
                           f"({why}); the estimate does not guess the size of a real data set")
    _GCS_COUNTS[uri] = (time.monotonic(), len(train), len(val))
    return len(train), len(val)


# splits file -> (its mtime_ns and size when counted, train, val). The Cost table prices the run on every
# machine of the region (~65 estimates per edit), and parsing a 4000-card splits.json each time took a
# second of CPU, in a worker that competed with the cockpit's first screen.
_LOCAL_COUNTS: dict[str, tuple[tuple[int, int], int, int]] = {}


def _local_record_counts(path: str) -> tuple[int, int] | None:
    """(train, val) records of a local splits file, None if unreadable; parsed again only when it changes."""
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        hit = _LOCAL_COUNTS.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        train, val = raw["train"], raw.get("val", [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not (isinstance(train, list) and isinstance(val, list)):
        return None
    _LOCAL_COUNTS[path] = (stamp, len(train), len(val))
    return len(train), len(val)


def dataset_size(cfg: Config) -> tuple[int, int, str]:
    """(train cards, val cards, where the numbers came from): the splits file if readable (gs:// too,
    which must be readable), else the synthetic set's size (synthetic_n x 0.8 train, x 0.1 val)."""
    path = cfg.data.splits
    if path.startswith("gs://"):
        train_n, val_n = _gcs_record_counts(cfg, path)
        return train_n, val_n, path
    counts = _local_record_counts(path) if path else None
    if counts is not None:
        return counts[0], counts[1], path
    n = cfg.data.synthetic_n
    return (int(n * SYNTHETIC_TRAIN_SHARE), int(n * SYNTHETIC_VAL_SHARE),
            f"data.synthetic_n {n} x {SYNTHETIC_TRAIN_SHARE:g} train / {SYNTHETIC_VAL_SHARE:g} val")


BUDGET_TIMEOUT_MARGIN = 0.9  # stop at 90% of what the budget buys: start-up and teardown bill too


def budget_timeout_s(cfg: Config, catalog: Catalog) -> float | None:
    """The longest run `cloud.max_cost_usd` pays for at the job's hourly price (spot or on-demand, all
    replicas), less the margin; None without a limit. It becomes the job's scheduling.timeout, so a
    hung job stops billing before it passes the budget."""
    c = cfg.cloud
    if c.max_cost_usd <= 0:
        return None
    hourly = catalog.hourly_price(c.machine_type, c.accelerator_type, c.accelerator_count, c.region,
                                  spot=c.spot) * c.replica_count
    return max(60.0, math.floor(c.max_cost_usd / hourly * 3600.0 * BUDGET_TIMEOUT_MARGIN))


def target_samples_per_s(st: StepTime, cfg: Config, catalog: Catalog) -> float:
    """Phase-2 throughput of the whole job (all GPUs, all replicas) from a measured StepTime."""
    sp = catalog.speed
    width, height = cfg.data.image_size
    mw, mh = st.image_size or (width, height)
    base = st.samples_per_s * (mw * mh) / (width * height)  # throughput scales with 1 / pixels
    if st.device == "cpu":
        cpu, t4 = base, base * sp.cpu_to_t4
        cores = st.cpu_cores
    else:
        t4 = base / catalog.accelerator(st.device).speed_vs_t4
        cpu, cores = t4 / sp.cpu_to_t4, 2
    c = cfg.cloud
    if c.accelerator_type:
        one = t4 * catalog.accelerator(c.accelerator_type).speed_vs_t4
        units = c.accelerator_count * c.replica_count
    else:
        one = cpu * catalog.machine(c.machine_type).vcpus * sp.cloud_vcpu_vs_local_core / max(1, cores)
        units = c.replica_count
    return one * (1 + (units - 1) * sp.multi_gpu_efficiency)


# ---------------------------------------------------------------------------------------------------------
# Storage


# Numbers in the grader's state dict (weights, BatchNorm statistics and the sampler's prior shifts, both
# branches and heads) per backbone, as counted on torch's meta device. Kept as a table so the first estimate (the TUI's first
# screen) does not import torch; tests/test_catalog_estimate.py recounts every entry with torch.
STATE_DICT_NUMBERS = {
    "resnet18": 22_385_652,
    "resnet34": 42_616_852,
    "resnet50": 47_175_734,
    "efficientnet_b0": 8_132_582,
    "mobilenet_v3_small": 3_086_704,
    "mobilenet_v3_large": 8_486_312,
    "convnext_tiny": 55_660_300,
}


def parameter_count(backbone: str) -> int:
    """Numbers in the grader's state dict with this backbone: the table above, or, for a backbone the
    table does not know, counted on torch's meta device (nothing allocated or downloaded)."""
    if backbone in STATE_DICT_NUMBERS:
        return STATE_DICT_NUMBERS[backbone]
    return count_state_dict_numbers(backbone)


@functools.lru_cache(maxsize=None)
def count_state_dict_numbers(backbone: str) -> int:
    import torch
    from core.model import DualBranchGrader

    with torch.device("meta"):
        model = DualBranchGrader(backbone, "", 0.5, 0.0)
    return sum(t.numel() for t in model.state_dict().values())


def uploaded_data_bytes(cfg: Config) -> tuple[int, str]:
    """(bytes of data a job keeps in the bucket, where that came from). Local cards that are not the
    generated synthetic set go up with --upload-data (the splits file and the images it names); a
    synthetic set is generated inside the job; gs:// data is already there and is not read from here."""
    path = cfg.data.splits
    if path.startswith("gs://"):
        return 0, "already in the bucket, not counted"
    if cfg.data.synthetic:
        return 0, "synthetic cards are generated in the job"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        base = Path(path).parent
        names = {rec[side] for split in ("train", "val", "test") for rec in raw.get(split, [])
                 for side in ("front", "back") if isinstance(rec, dict) and isinstance(rec.get(side), str)}
        total = Path(path).stat().st_size
        for name in names:
            if not name.startswith("gs://"):
                with_base = base / name
                total += with_base.stat().st_size if with_base.is_file() else 0
        return total, f"{len(names):,} images under {base}, uploaded with --upload-data"
    except (OSError, ValueError, TypeError, AttributeError):
        return 0, f"{path} not readable here, not counted"


def storage_estimate(cfg: Config, catalog: Catalog) -> StorageEstimate:
    """Checkpoints the run keeps (last.pth and the newest keep_last checkpoint_epoch_N as full training
    states, phase1_best/phase2_best as weights), the export, and uploaded data, at the catalog's price."""
    params = parameter_count(cfg.model.backbone)
    state = params * TRAINING_STATE_BYTES_PER_PARAM
    weights = params * WEIGHTS_BYTES_PER_PARAM
    t, o = cfg.training, cfg.output
    epochs = t.phase1_epochs + t.phase2_epochs
    numbered = min(o.keep_last, epochs // o.save_every) if o.save_every else 0
    states = 1 + numbered
    bests = (t.phase1_epochs > 0) + (t.phase2_epochs > 0)
    data, data_source = uploaded_data_bytes(cfg)
    price = catalog.storage_gb_month * catalog.check_region(cfg.cloud.region)
    detail = (f"{states} x {_size(state)} training state + {bests} x {_size(weights)} best weights "
              f"({params / 1e6:.1f} M parameters)")
    return StorageEstimate(states * state + bests * weights, weights, data, price, detail, data_source)


def _size(n: float) -> str:
    return f"{n / GB:.2f} GB" if n >= 0.1 * GB else f"{n / 1e6:.0f} MB"


def estimate(cfg: Config, catalog: Catalog, step_time: StepTime | None = None, *, benchmark: bool = False,
             runs_dir: Path | None = Path("outputs/runs")) -> Estimate:
    """Hours and cost of `cfg` on its [cloud] machine. Without `step_time`: last local run, else the quick
    benchmark when `benchmark`, else the default table."""
    notes = []
    if step_time is None:
        step_time = step_time_from_runs(cfg, runs_dir)
    if step_time is None and benchmark:
        step_time = quick_benchmark(cfg)
    if step_time is None:
        step_time = default_step_time(cfg, catalog)
    c, t = cfg.cloud, cfg.training
    catalog.validate_combo(c.machine_type, c.accelerator_type, c.accelerator_count, c.region, cfg.source)
    sps = target_samples_per_s(step_time, cfg, catalog)
    train_n, val_n, data_src = dataset_size(cfg)
    # Every process takes batch_size cards per step from its own shard (core/train.py), so a step of the
    # whole job moves batch_size x processes cards.
    procs = max(1, c.accelerator_count) * c.replica_count if c.accelerator_type else c.replica_count
    per_epoch = train_n
    if t.max_steps_per_epoch:
        per_epoch = min(train_n, t.max_steps_per_epoch * t.batch_size * t.grad_accum_steps * procs)
    steps_per_epoch = math.ceil(per_epoch / (t.batch_size * procs))
    eval_steps = math.ceil(val_n / (t.batch_size * procs))
    step_s = t.batch_size * procs / sps
    weighted_epochs = t.phase1_epochs * PHASE1_COST + t.phase2_epochs
    seconds = weighted_epochs * (steps_per_epoch + eval_steps * catalog.speed.eval_cost) * step_s
    hours = seconds / 3600.0 + catalog.speed.startup_minutes / 60.0
    hourly = catalog.hourly_price(c.machine_type, c.accelerator_type, c.accelerator_count, c.region) \
        * c.replica_count
    hourly_spot = catalog.hourly_price(c.machine_type, c.accelerator_type, c.accelerator_count, c.region,
                                       spot=True) * c.replica_count
    if t.phase1_epochs:
        notes.append("phase 1 trains the back branch only: about half the compute of a phase-2 epoch")
    notes.append(f"includes {catalog.speed.startup_minutes:g} min of start-up (provisioning, image pull)")
    if cfg.early_stopping.enabled:
        notes.append("an upper bound: early stopping may end a phase sooner")
    gpu = f" + {c.accelerator_count} x {c.accelerator_type}" if c.accelerator_type else " (CPU only)"
    return Estimate(hours=hours, on_demand_usd=hourly * hours, spot_usd=hourly_spot * hours,
                    hourly_on_demand=hourly, hourly_spot=hourly_spot, step_time_s=step_s,
                    steps=(t.phase1_epochs + t.phase2_epochs) * steps_per_epoch, source=step_time.source,
                    samples_per_s=sps, train_cards=train_n, val_cards=val_n, dataset_source=data_src,
                    spot=c.spot,
                    target=f"{c.machine_type}{gpu}, {c.replica_count} replica{'s' * (c.replica_count > 1)}, "
                           f"{c.region}" + (f", {procs} training processes" if procs > 1 else ""),
                    price_source=f"{catalog.source} ({catalog.date}), Vertex surcharge x{catalog.vertex_surcharge:g}",
                    notes=notes, processes=procs, storage=storage_estimate(cfg, catalog))


@dataclass
class Alternative:
    """The same run priced on another machine + GPU combination."""
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    hours: float
    on_demand_usd: float
    spot_usd: float


def alternatives(cfg: Config, catalog: Catalog, step_time: StepTime) -> list[Alternative]:
    """`cfg`'s run on every valid machine + GPU of its region (Catalog.choices), cheapest on-demand first."""
    out = []
    for machine, accelerator, count in catalog.choices(cfg.cloud.region):
        cloud = dataclasses.replace(cfg.cloud, machine_type=machine, accelerator_type=accelerator,
                                    accelerator_count=count)
        try:
            e = estimate(dataclasses.replace(cfg, cloud=cloud), catalog, step_time=step_time)
        except CockpitError:
            continue
        out.append(Alternative(machine, accelerator, count, e.hours, e.on_demand_usd, e.spot_usd))
    return sorted(out, key=lambda a: a.on_demand_usd)


def estimate_with_alternatives(cfg: Config, catalog: Catalog,
                               runs_dir: Path | None = Path("outputs/runs")) -> tuple[Estimate, list[Alternative]]:
    """The preset's estimate and its alternatives from one step time (last local run, else the default
    table; never the benchmark, which would block a live panel for seconds)."""
    step = step_time_from_runs(cfg, runs_dir) or default_step_time(cfg, catalog)
    return estimate(cfg, catalog, step_time=step), alternatives(cfg, catalog, step)


def format_estimate(est: Estimate) -> str:
    """A few readable lines for the terminal (the TUI shows the same text)."""
    pay = "spot" if est.spot else "on-demand"
    lines = [
        f"target:     {est.target}",
        f"data:       {est.train_cards:,} train / {est.val_cards:,} val cards ({est.dataset_source})",
        f"steps:      {est.steps:,} training steps, {est.step_time_s:.3f} s each "
        f"({est.samples_per_s:,.0f} samples/s on the target)",
        f"step time:  {est.source}",
        f"time:       {_hours(est.hours)}",
        f"cost:       on-demand ${est.on_demand_usd:,.2f} (${est.hourly_on_demand:,.3f}/h)   "
        f"spot ${est.spot_usd:,.2f} (${est.hourly_spot:,.3f}/h)   this preset: {pay}",
        *([storage_line(est.storage)] if est.storage else []),
        f"prices:     {est.price_source}",
    ]
    lines += [f"note:       {n}" for n in est.notes]
    return "\n".join(lines)


def storage_line(st: StorageEstimate) -> str:
    """The storage cost, one line, beside the compute cost (the CLI and the TUI's Cost section)."""
    return (f"storage:    ${st.usd_per_month:,.2f} per month for {st.total_gb:,.2f} GB kept in the bucket "
            f"(checkpoints {_size(st.checkpoint_bytes)}: {st.detail}; export {_size(st.export_bytes)}; "
            f"data {_size(st.data_bytes)}: {st.data_source}) at ${st.usd_per_gb_month:.3f}/GB-month")


def _hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.0f} s"
    if h < 1:
        return f"{h * 60:.0f} min ({h:.2f} h)"
    return f"{h:.1f} h"

