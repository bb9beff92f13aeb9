"""Train the dual-branch PSA grader: `python -m core.train --preset local|cloud|FILE [--set k=v ...]`.

The same loop runs on a laptop, in the Vertex AI container and on a GPU VM. Read top to bottom:
  setup()        device, ranks, data (generated if it is the built-in synthetic set), model
  run()          phase 1 (back branch only) -> phase 2 (both branches) -> test report -> export
  train_phase()  epochs with evaluation, early stopping, checkpoints
  train_epoch()  micro-batches, gradient accumulation, AMP, the LR schedule, preemption checks
Checkpoints carry everything needed to continue mid-epoch with the same result (core/checkpoint.py).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from core import checkpoint, distributed, storage
from core.augment import augment_batch, batch_generator
from core.checkpoint import CheckpointError
from core.config import Config, ConfigError, config_to_toml
from core.data import CardDataset, ImageError, UInt8Cache, normalize_on_device
from core.early_stopping import EarlyStopping
from core.events import EventWriter, ProgressBar
from core.export import export_model
from core.losses import grading_loss
from core.metrics import format_report, grading_report
from core.model import DualBranchGrader
from core.preemption import EXIT_PREEMPTED, PreemptionHandler
from core.records import CardRecord, SplitsError, load_splits
from core.schedulers import get_scheduler
from core.train_args import build_parser, config_from_args

EXIT_OK, EXIT_BAD_INPUT = 0, 2
PREEMPT_CHECK_EVERY = 5  # optimizer steps between the ranks' preemption agreements (multi-process only)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a NaN loss); the message is one line, the last good checkpoint stays."""


class Preempted(Exception):
    """Raised inside the loop after the preemption checkpoint is written."""


class ListSampler(Sampler):
    """Yields the index list the trainer sets for the current epoch (one DataLoader per phase, so
    persistent workers survive across epochs)."""

    def __init__(self):
        self.indices: list[int] = []

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def resolve_precision(name: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """-> (autocast dtype or None for fp32, whether a GradScaler is needed)."""
    if name == "auto":
        if device.type == "cuda":
            return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)
        return None, False
    if name == "fp16":
        if device.type != "cuda":
            raise ConfigError("training.precision = 'fp16' needs a CUDA GPU (use 'bf16' or 'fp32' on CPU)")
        return torch.float16, True
    if name == "bf16":
        return torch.bfloat16, False
    return None, False


def accumulate_and_step(model, micro_batches, compute_loss, optimizer, scaler, max_grad_norm: float,
                        no_sync=None) -> torch.Tensor:
    """One optimizer step over `micro_batches`: the summed loss of accumulation equals one big batch.

    Each micro-batch loss is a mean, so it is divided by their number. Under DDP, gradients are only
    all-reduced on the last micro-batch (`no_sync` on the others). Returns the mean loss, detached, on the
    device (no host sync here).
    """
    n = len(micro_batches)
    total = None
    for i, batch in enumerate(micro_batches):
        sync = i == n - 1 or no_sync is None
        with (contextlib.nullcontext() if sync else no_sync()):
            loss = compute_loss(batch) / n
            scaler.scale(loss).backward()
        total = loss.detach() if total is None else total + loss.detach()
    if max_grad_norm > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return total


@dataclass
class Position:
    """Where training is: enough to continue exactly here."""
    phase: int = 1
    epoch: int = 1            # 1-based epoch within the phase
    batches_done: int = 0     # micro-batches already consumed in this epoch
    global_step: int = 0      # optimizer steps over the whole run
    phase_step: int = 0       # optimizer steps in this phase (drives the LR schedule)
    loss_sum: float = 0.0     # this epoch's running train loss so far, so a resumed epoch reports the same
    loss_count: int = 0


class Trainer:
    def __init__(self, cfg: Config, log_format: str = "auto"):
        self.cfg = cfg
        self.denv = distributed.dist_env_from_environ()
        self.is_main = self.denv.rank == 0
        self.events = EventWriter(log_format, enabled=self.is_main)
        self.preemption = PreemptionHandler()
        self.pos = Position()
        self.history: list[dict] = []
        self._last_save_s = 0.0
        self.tb = None  # set in setup(); run()'s cleanup reads it even when setup fails early

    # ------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.denv.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        distributed.init_distributed(self.denv, self.device)
        self.amp_dtype, use_scaler = resolve_precision(cfg.training.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self._seed_everything(cfg.training.seed)
        if cfg.training.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        o = cfg.output
        self.out_dir = o.dir
        self.ckpt_dir, self.model_dir, self.tb_dir = storage.resolve_output_dirs(
            o.dir, o.checkpoint_dir, o.model_dir, o.tensorboard_dir)
        self._check_output_buckets()
        # Logs and reports are written locally, then copied when the run dir is gs://.
        self.local_run_dir = Path(tempfile.mkdtemp(prefix="psa-run-")) if storage.is_gcs(o.dir) else Path(o.dir)
        if self.is_main:
            self.local_run_dir.mkdir(parents=True, exist_ok=True)
            log = self.local_run_dir / "training.log"
            remote_log = storage.join(o.dir, "training.log")
            if storage.is_gcs(o.dir) and storage.exists(remote_log):
                # A restarted (preempted) job appends to the earlier attempts' log, as a local run does.
                log.write_bytes(storage.read_bytes(remote_log))
            self.events.open_log(str(log))
            (self.local_run_dir / "config.toml").write_text(config_to_toml(cfg), encoding="utf-8")
            self._publish_run_files()

        self.splits = self._load_data()
        self.model = DualBranchGrader(cfg.model.backbone, cfg.model.weights, cfg.model.lambda_fusion,
                                      cfg.model.dropout).to(self.device)
        if cfg.model.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model_signature = {**self.model.config(), "image_size": list(cfg.data.image_size)}
        self.tb = self._open_tensorboard()
        self.events.emit(
            "start", f"training {cfg.model.backbone} on {len(self.splits.train)} cards "
                     f"({self.device.type}, {self._precision_name()}, world size {self.denv.world_size})",
            preset=cfg.source, device=str(self.device), precision=self._precision_name(),
            world_size=self.denv.world_size, backbone=cfg.model.backbone, image_size=list(cfg.data.image_size),
            train=len(self.splits.train), val=len(self.splits.val), test=len(self.splits.test),
            phase1_epochs=cfg.training.phase1_epochs, phase2_epochs=cfg.training.phase2_epochs,
            batch_size=cfg.training.batch_size, grad_accum_steps=cfg.training.grad_accum_steps,
            output_dir=self.out_dir, checkpoint_dir=self.ckpt_dir, model_dir=self.model_dir,
            config=cfg.to_dict())

    def _check_output_buckets(self) -> None:
        """A missing gs:// output bucket fails now, on every rank, not at the first checkpoint an epoch in."""
        for what, path in (("output dir", self.out_dir), ("checkpoint dir", self.ckpt_dir),
                           ("model dir", self.model_dir)):
            if storage.is_gcs(path):
                bucket = "gs://" + storage.split_gcs(path)[0]
                if not storage.exists(bucket):
                    raise storage.StorageError(f"{path}: bucket {bucket} not found (the {what})")

    def _precision_name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _load_data(self):
        cfg = self.cfg.data
        stale = cfg.synthetic and self._synthetic_set_differs()
        if cfg.synthetic and (stale or not storage.exists(cfg.splits)):
            if storage.is_gcs(cfg.splits):
                raise ConfigError(f"data.splits = {cfg.splits!r}: synthetic data is generated locally only; "
                                  f"point data.splits at a local path or upload the set")
            if self.is_main:
                from core.synth.dataset import SynthError, generate

                why = f" (the set there was made with other settings: {stale})" if stale else ""
                self.events.emit("info", f"generating {cfg.synthetic_n} synthetic cards in "
                                         f"{Path(cfg.splits).parent} (seed {cfg.synthetic_seed}){why}")
                try:
                    generate(Path(cfg.splits).parent, cfg.synthetic_n, cfg.synthetic_seed,
                             size=tuple(cfg.synthetic_size))
                except SynthError as exc:  # e.g. a typo'd data.splits in a folder of real cards
                    raise ConfigError(f"data.splits = {cfg.splits!r}: {exc}") from None
            distributed.barrier()
        splits = load_splits(cfg.splits)
        size = tuple(cfg.image_size)
        self.datasets = {}
        for name in ("train", "val", "test"):
            records = splits.split(name)
            cache = None
            if cfg.cache:
                cache = UInt8Cache(records, size, ("front", "back"), cfg.cache_dir, cfg.cache_dir)
                if self.is_main:
                    bar = ProgressBar(len(records), f"caching {name}")
                    cache.ensure(lambda done, total: bar.update(done))
                    bar.close()
                distributed.barrier()
                cache.ensure()
            self.datasets[name] = {sides: CardDataset(records, size, sides, cache, cfg.cache_dir)
                                   for sides in (("back",), ("front", "back"))}
        return splits

    def _synthetic_set_differs(self) -> str:
        """Describe how an existing generated set differs from the preset ('' if it matches, is missing,
        or is not ours). Only sets the generator wrote (they carry a "synthetic" block) are ever replaced."""
        cfg = self.cfg.data
        if storage.is_gcs(cfg.splits) or not os.path.isfile(cfg.splits):
            return ""
        try:
            made = json.loads(Path(cfg.splits).read_text(encoding="utf-8")).get("synthetic")
        except (OSError, ValueError, AttributeError):
            return ""
        if not isinstance(made, dict):
            return ""
        wanted = {"n": cfg.synthetic_n, "seed": cfg.synthetic_seed, "size": list(cfg.synthetic_size)}
        return ", ".join(f"{k} {made.get(k)} vs {v}" for k, v in wanted.items() if made.get(k) != v)

    def _open_tensorboard(self):
        if not (self.tb_dir and self.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.events.emit("warning", "tensorboard is not installed: TensorBoard scalars are off",
                             severity="WARNING")
            return None
        return SummaryWriter(log_dir=self.tb_dir)

    # -------------------------------------------------------------------------------------------- run
    def run(self) -> int:
        self.preemption.install()
        try:
            self.setup()
            if self.is_main:
                for path in checkpoint.remove_stale_temp_files(self.ckpt_dir):
                    self.events.emit("info", f"removed {path}: left by an interrupted checkpoint write")
            self._maybe_resume()
            if self.pos.phase == 1 and self.cfg.training.phase1_epochs > 0:
                self.train_phase(1)
                self.pos = Position(phase=2, global_step=self.pos.global_step)
            self.pos.phase = 2
            if self.cfg.training.phase2_epochs > 0:
                self.train_phase(2)
            return self.finish()
        except Preempted:
            return EXIT_PREEMPTED
        except BAD_INPUT as exc:
            self.events.emit("error", one_line(exc), severity="ERROR")  # lands in training.log and Cloud Logging
            raise
        finally:
            self.preemption.uninstall()
            if self.tb:
                self.tb.close()
            self.events.close()
            distributed.cleanup()

    def _maybe_resume(self) -> None:
        resume = self.cfg.output.resume
        if resume == "none":
            return
        if resume == "auto":
            found = checkpoint.find_resumable(
                self.ckpt_dir, warn=lambda m: self.events.emit("warning", m, severity="WARNING"))
            if found is None:
                self.events.emit("info", f"no checkpoint in {self.ckpt_dir}: starting fresh")
                return
            path, state = found
        else:
            path, state = resume, checkpoint.load(resume)
        if "global_step" not in state:
            raise CheckpointError(f"{path}: not a training checkpoint (use it with core.evaluate instead)")
        checkpoint.check_model_config(state["model_signature"], self.model_signature, path)
        self._resume_state = state
        self.pos = Position(**state["position"])
        self.history = list(state.get("history", []))
        self.events.emit("info", f"resuming from {path}: phase {self.pos.phase} epoch {self.pos.epoch} "
                                 f"batch {self.pos.batches_done} (step {self.pos.global_step})",
                         resumed_from=path, **state["position"])

    # ------------------------------------------------------------------------------------------ phase
    def _phase_settings(self, phase: int):
        t = self.cfg.training
        return ((("back",), t.phase1_epochs, t.lr_phase1) if phase == 1
                else (("front", "back"), t.phase2_epochs, t.lr_phase2))

    def train_phase(self, phase: int) -> None:
        cfg, t = self.cfg, self.cfg.training
        sides, epochs, lr = self._phase_settings(phase)
        state = getattr(self, "_resume_state", None)
        resuming = state is not None and state["position"]["phase"] == phase
        if phase == 2 and not resuming and t.phase1_epochs > 0:
            best1 = storage.join(self.ckpt_dir, "phase1_best.pth")
            self.model.init_from_phase1(checkpoint.load(best1, self.device)["model"])
        # Phase 1 trains only the back branch: freezing the front keeps DDP from waiting on its grads.
        for p in self.model.front.parameters():
            p.requires_grad_(phase == 2)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=t.weight_decay,
                                      fused=self.device.type == "cuda")
        train_set = self.datasets["train"][sides]
        steps_per_epoch = self._steps_per_epoch(len(train_set))
        total_steps = steps_per_epoch * epochs
        warmup = t.warmup_steps or int(round(t.warmup_ratio * total_steps))
        sched_kwargs = {"power": t.power, "lr_end": t.lr_end}
        if t.num_cycles > 0:
            sched_kwargs["num_cycles"] = t.num_cycles
        scheduler = get_scheduler(t.scheduler, optimizer, warmup, total_steps, **sched_kwargs)
        stopper = EarlyStopping(cfg.early_stopping.mode, cfg.early_stopping.patience,
                                cfg.early_stopping.min_delta, cfg.early_stopping.enabled)
        if resuming:
            self.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            stopper.load_state_dict(state["early_stopping"])
            self._restore_rng(state["rng"])
            self._resume_state = None
        net = self._wrap(self.model)
        sampler = ListSampler()
        loader = self._loader(train_set, sampler, cfg.training.batch_size, drop_last=True)
        ctx = PhaseContext(phase, sides, epochs, steps_per_epoch, net, optimizer, scheduler, stopper,
                           sampler, loader)
        while self.pos.epoch <= epochs and not stopper.should_stop:
            self.train_epoch(ctx)
            metrics = self.evaluate("val", sides)
            improved = stopper.update(metrics[cfg.early_stopping.metric], self.pos.epoch)
            self._end_of_epoch(ctx, metrics, improved)
            if stopper.should_stop:
                self.events.emit("early_stop", f"phase {phase}: no {cfg.early_stopping.metric} improvement for "
                                               f"{stopper.patience} epochs; best {stopper.best:.4f} at epoch "
                                               f"{stopper.best_epoch}", phase=phase, epoch=self.pos.epoch,
                                 best=stopper.best, best_epoch=stopper.best_epoch)
            self.pos = Position(phase, self.pos.epoch + 1, 0, self.pos.global_step, self.pos.phase_step)
            if self._preempt_requested(epoch_end=True):
                self._report_preempted(ctx, self._last_save_s)  # last.pth was just written for this point
        stopped_early = stopper.should_stop
        # Restore the phase's best weights (they are what phase 2 starts from and what gets exported).
        best = checkpoint.load(storage.join(self.ckpt_dir, f"phase{phase}_best.pth"), self.device)
        self.model.load_state_dict(best["model"])
        self.events.emit("info", f"phase {phase} done ({'early stop' if stopped_early else 'all epochs'}); "
                                 f"restored best weights from epoch {best['epoch']}", phase=phase,
                         best_epoch=best["epoch"])

    def _steps_per_epoch(self, n_records: int) -> int:
        t = self.cfg.training
        per_rank = n_records // self.denv.world_size
        batches = per_rank // t.batch_size
        steps = batches // t.grad_accum_steps
        if steps == 0:
            raise ConfigError(f"training.batch_size x grad_accum_steps x world size = "
                              f"{t.batch_size * t.grad_accum_steps * self.denv.world_size} exceeds the "
                              f"{n_records} training cards: lower training.batch_size")
        return min(steps, t.max_steps_per_epoch) if t.max_steps_per_epoch else steps

    def _wrap(self, model):
        net = model
        if self.cfg.model.compile:
            net = torch.compile(net)
        if self.denv.world_size > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return net

    def _loader(self, dataset, sampler, batch_size: int, drop_last: bool) -> DataLoader:
        d = self.cfg.data
        workers = d.num_workers
        # Its own generator: every new iterator draws a base seed, and from the global RNG that draw would
        # shift dropout's stream whenever a resumed run opens its loader mid-epoch (not bitwise then).
        generator = torch.Generator().manual_seed(self.cfg.training.seed)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, generator=generator,
                          pin_memory=d.pin_memory and self.device.type == "cuda", drop_last=drop_last,
                          persistent_workers=d.persistent_workers and workers > 0,
                          prefetch_factor=d.prefetch_factor if workers > 0 else None)

    def _epoch_indices(self, phase: int, epoch: int, n: int) -> list[int]:
        """This rank's sample order for an epoch: a pure function of (seed, phase, epoch), so a resumed
        run draws the very same order."""
        t = self.cfg.training
        seed = t.seed * 1000 + phase * 100 + epoch
        if t.use_sampler:
            weights = distributed.sampler_weights([r.grade for r in self.splits.train], t.sampler_power)
            s = distributed.DistributedWeightedSampler(weights, n // self.denv.world_size, self.denv.rank,
                                                       self.denv.world_size, seed)
        else:
            s = distributed.DistributedShardSampler(n, self.denv.rank, self.denv.world_size, shuffle=True,
                                                    seed=seed)
        s.set_epoch(0)
        return list(iter(s))

    # ------------------------------------------------------------------------------------------ epoch
    def train_epoch(self, ctx: "PhaseContext") -> None:
        t = self.cfg.training
        accum = t.grad_accum_steps
        n_batches = ctx.steps_per_epoch * accum
        indices = self._epoch_indices(ctx.phase, self.pos.epoch, len(self.splits.train))
        start = self.pos.batches_done
        ctx.sampler.indices = indices[start * t.batch_size: n_batches * t.batch_size]
        ctx.net.train()
        bar = ProgressBar(n_batches - start, f"phase {ctx.phase} epoch {self.pos.epoch}/{ctx.epochs}")
        loss_sum = torch.full((), self.pos.loss_sum, device=self.device)
        loss_count = self.pos.loss_count
        samples, t0, data_time = 0, time.perf_counter(), 0.0
        no_sync = getattr(ctx.net, "no_sync", None)
        pending: list[dict] = []
        t_data = time.perf_counter()
        for batch in ctx.loader:
            data_time += time.perf_counter() - t_data
            # The batch's index in the epoch seeds its augmentation: a resumed run repeats it exactly.
            pending.append((batch, self.pos.batches_done + len(pending)))
            if len(pending) < accum:
                t_data = time.perf_counter()
                continue
            loss = accumulate_and_step(
                ctx.net, pending, lambda item: self._loss(ctx, *item), ctx.optimizer, self.scaler,
                t.max_grad_norm, no_sync)
            ctx.scheduler.step()
            samples += sum(len(b["grade"]) for b, _ in pending)
            pending = []
            self.pos.batches_done += accum
            self.pos.global_step += 1
            self.pos.phase_step += 1
            loss_sum += loss
            loss_count += 1
            bar.update(self.pos.batches_done - start)
            if self.pos.global_step % t.log_every_steps == 0:
                mean_loss = self._check_finite(loss_sum / loss_count, ctx)  # the one host sync per interval
                elapsed = time.perf_counter() - t0
                self.events.emit("step", f"step {self.pos.global_step} loss {mean_loss:.4f}", phase=ctx.phase,
                                 epoch=self.pos.epoch, step=self.pos.global_step, train_loss=mean_loss,
                                 lr=ctx.optimizer.param_groups[0]["lr"],
                                 samples_per_s=samples * self.denv.world_size / max(elapsed, 1e-9))
            if self._preempt_requested():
                self.pos.loss_sum, self.pos.loss_count = float(loss_sum), loss_count
                self._on_preempt(ctx)
            t_data = time.perf_counter()
        bar.close()
        self._sync_buffers()
        elapsed = time.perf_counter() - t0
        ctx.last_train_loss = self._check_finite(loss_sum / max(loss_count, 1), ctx) if loss_count else math.nan
        ctx.last_samples_per_s = samples * self.denv.world_size / max(elapsed, 1e-9)
        ctx.last_data_time = data_time
        ctx.last_epoch_time = elapsed

    def _sync_buffers(self) -> None:
        """Rank 0's BatchNorm statistics on every rank. DDP broadcasts them at the start of each forward,
        so after an epoch's last forward each rank holds the statistics of its own last batch: each would
        evaluate its shard with a different model, none of them the one rank 0 saves."""
        if self.denv.world_size > 1:
            for buf in self.model.buffers():
                torch.distributed.broadcast(buf, src=0)

    def _loss(self, ctx, batch: dict, batch_index: int) -> torch.Tensor:
        inputs = self._images(batch, ctx.sides, train=True, batch_index=batch_index, phase=ctx.phase)
        targets = {k: batch[k].to(self.device, non_blocking=True)
                   for k in ("grade", "edge", "edge_mask", "centering", "center_mask")}
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            outputs = ctx.net(**inputs)
        loss, _ = grading_loss(outputs, targets, self.cfg.loss.alpha_emd, self.cfg.loss.beta_edge,
                               self.cfg.loss.beta_center)
        return loss

    def _images(self, batch: dict, sides, train: bool, batch_index: int = 0, phase: int = 0) -> dict:
        out = {}
        for i, side in enumerate(sides):
            x = batch[side].to(self.device, non_blocking=True)
            if train and self.cfg.data.augment:
                g = batch_generator(self.cfg.training.seed + i, phase, self.pos.epoch,
                                    batch_index * self.denv.world_size + self.denv.rank, self.device)
                x = augment_batch(x.float().div_(255.0), g).mul_(255.0)
            out[side] = normalize_on_device(x, self.cfg.model.channels_last)
        return out

    def _check_finite(self, value: torch.Tensor, ctx) -> float:
        v = float(value)
        if not math.isfinite(v):
            raise TrainingError(f"loss is {v} at phase {ctx.phase} epoch {self.pos.epoch} step "
                                f"{self.pos.global_step}: lower the learning rate (training.lr_phase{ctx.phase}) "
                                f"or use precision 'fp32'; the last good checkpoint is kept in {self.ckpt_dir}")
        return v

    # ----------------------------------------------------------------------------------- preemption
    def _preempt_requested(self, epoch_end: bool = False) -> bool:
        if self.denv.world_size == 1:
            return self.preemption.requested
        # Ranks must agree, which costs an all-reduce and a host sync: do it every few steps only (the
        # same steps on every rank) and at every epoch end, still far inside the ~30 s a Spot VM gets.
        if not epoch_end and self.pos.global_step % PREEMPT_CHECK_EVERY:
            return False
        return distributed.any_rank_true(self.preemption.requested)

    def _on_preempt(self, ctx) -> None:
        self._report_preempted(ctx, self._save_training_state(ctx, "last.pth"))

    def _report_preempted(self, ctx, seconds: float) -> None:
        since = self.preemption.seconds_since_signal()
        self.events.emit("preempted", f"signal received: saved {self.ckpt_dir}/last.pth "
                                      f"{since:.2f}s after the signal; resume with --resume auto",
                         severity="WARNING", phase=ctx.phase, epoch=self.pos.epoch, step=self.pos.global_step,
                         batches_done=self.pos.batches_done, save_s=round(seconds, 3),
                         signal_to_saved_s=round(since, 3))
        self._publish_run_files()
        raise Preempted()

    # ------------------------------------------------------------------------------------ evaluation
    def _eval_loader(self, split: str, sides) -> DataLoader:
        """One loader per (split, sides), kept: persistent workers are not restarted every epoch."""
        cache = self.__dict__.setdefault("_eval_loaders", {})
        if (split, sides) not in cache:
            dataset = self.datasets[split][sides]
            sampler = ListSampler()
            sampler.indices = list(range(self.denv.rank, len(dataset), self.denv.world_size))
            cache[split, sides] = self._loader(dataset, sampler, self.cfg.training.batch_size, drop_last=False)
        return cache[split, sides]

    @torch.no_grad()
    def evaluate(self, split: str, sides) -> dict:
        # The bare model, not the DDP wrapper: ranks' shards may differ in batch count, and DDP's
        # forward would wait for a buffer broadcast the other ranks never join.
        net = self.model
        net.eval()
        loader = self._eval_loader(split, sides)
        confusion = torch.zeros(10, 10, dtype=torch.float64, device=self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for batch in loader:
            inputs = self._images(batch, sides, train=False)
            targets = {k: batch[k].to(self.device, non_blocking=True)
                       for k in ("grade", "edge", "edge_mask", "centering", "center_mask")}
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                outputs = net(**inputs)
            loss, _ = grading_loss(outputs, targets, self.cfg.loss.alpha_emd, self.cfg.loss.beta_edge,
                                   self.cfg.loss.beta_center)
            loss_sum += loss.double() * len(batch["grade"])
            pred = outputs["logits"].float().argmax(dim=1)
            confusion.index_put_((targets["grade"], pred), torch.ones_like(pred, dtype=torch.float64),
                                 accumulate=True)
        distributed.all_reduce_sum(confusion)
        distributed.all_reduce_sum(loss_sum)
        cm = confusion.round().long().cpu().numpy()
        y_true = np.repeat(np.arange(1, 11), cm.sum(axis=1))
        y_pred = np.concatenate([np.repeat(np.arange(1, 11), row) for row in cm])
        report = grading_report(y_true, y_pred)
        n = max(1, int(cm.sum()))
        return {"val_loss": float(loss_sum) / n, "val_qwk": report["qwk"], "val_mae": report["mae"],
                "val_acc": report["accuracy"], "report": report}

    # ----------------------------------------------------------------------------------- bookkeeping
    def _end_of_epoch(self, ctx, metrics: dict, improved: bool) -> None:
        self._check_finite(torch.tensor(metrics["val_loss"]), ctx)
        lr = ctx.optimizer.param_groups[0]["lr"]
        remaining = (ctx.epochs - self.pos.epoch) + (self.cfg.training.phase2_epochs if ctx.phase == 1 else 0)
        epoch_time = ctx.last_epoch_time
        fields = dict(phase=ctx.phase, epoch=self.pos.epoch, epochs=ctx.epochs, step=self.pos.global_step,
                      train_loss=ctx.last_train_loss, val_loss=metrics["val_loss"], val_qwk=metrics["val_qwk"],
                      val_mae=metrics["val_mae"], val_acc=metrics["val_acc"], lr=lr,
                      samples_per_s=round(ctx.last_samples_per_s, 2), epoch_time_s=round(epoch_time, 2),
                      data_time_s=round(ctx.last_data_time, 2), eta_s=round(remaining * epoch_time, 1),
                      improved=improved)
        self.history.append(fields)
        self.events.emit("epoch", f"epoch {self.pos.epoch} phase {ctx.phase} val_qwk {metrics['val_qwk']:.4f}",
                         **fields)
        if self.tb:
            for key in ("train_loss", "val_loss", "val_qwk", "val_mae", "lr", "samples_per_s"):
                self.tb.add_scalar(f"phase{ctx.phase}/{key}", fields[key], self.pos.global_step)
        if improved and self.is_main:
            best = {"model": self.model.state_dict(), "model_signature": self.model_signature,
                    "phase": ctx.phase, "epoch": self.pos.epoch, "metrics": {k: v for k, v in metrics.items()
                                                                             if k != "report"}}
            seconds = checkpoint.save(best, storage.join(self.ckpt_dir, f"phase{ctx.phase}_best.pth"))
            self.events.emit("checkpoint", f"new best {self.cfg.early_stopping.metric} "
                                           f"{ctx.stopper.best:.4f}: phase{ctx.phase}_best.pth",
                             phase=ctx.phase, epoch=self.pos.epoch, kind="best", save_s=round(seconds, 3))
        # Epoch boundary state: the next epoch starts at batch 0 (set before saving, so resume starts there).
        next_pos = Position(ctx.phase, self.pos.epoch + 1, 0, self.pos.global_step, self.pos.phase_step)
        every = self.cfg.output.save_every
        # Numbered over the whole run (phase 2 continues phase 1's count) so names never collide.
        run_epoch = self.pos.epoch + (self.cfg.training.phase1_epochs if ctx.phase == 2 else 0)
        names = ["last.pth"] + ([f"checkpoint_epoch_{run_epoch}.pth"] if every and run_epoch % every == 0 else [])
        saved_pos = self.pos
        self.pos = next_pos
        for name in names:
            seconds = self._save_training_state(ctx, name)
            if name == "last.pth":
                self._last_save_s = seconds
        self.pos = saved_pos
        if self.is_main:
            checkpoint.prune(self.ckpt_dir, self.cfg.output.keep_last)
            self._publish_run_files()
        distributed.barrier()

    def _save_training_state(self, ctx, name: str) -> float:
        rng = self._rng_state()
        all_rng = distributed.gather_objects(rng)  # every rank's generators, saved by rank 0
        if not self.is_main:
            return 0.0
        state = {
            "model": self.model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
            "scheduler": ctx.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "early_stopping": ctx.stopper.state_dict(), "position": vars(self.pos).copy(),
            "global_step": self.pos.global_step, "rng": all_rng, "model_signature": self.model_signature,
            "history": self.history, "config": self.cfg.to_dict(),
        }
        path = storage.join(self.ckpt_dir, name)
        seconds = checkpoint.save(state, path)
        self.events.emit("checkpoint", f"saved {name} in {seconds:.2f}s", phase=ctx.phase, epoch=self.pos.epoch,
                         step=self.pos.global_step, path=path, kind=name.split("_")[0].removesuffix(".pth"),
                         save_s=round(seconds, 3))
        return seconds

    def _rng_state(self) -> dict:
        np_state = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def _restore_rng(self, all_rng: list) -> None:
        rng = all_rng[self.denv.rank] if self.denv.rank < len(all_rng) else all_rng[0]
        random.setstate(_as_tuple(rng["python"]))
        name, keys, *rest = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _publish_run_files(self) -> None:
        if self.is_main and storage.is_gcs(self.out_dir):
            for f in self.local_run_dir.iterdir():
                if f.is_file():
                    storage.copy_to(str(f), storage.join(self.out_dir, f.name))

    # ---------------------------------------------------------------------------------------- finish
    def finish(self) -> int:
        sides = ("front", "back") if self.cfg.training.phase2_epochs > 0 else ("back",)
        metrics = self.evaluate("test", sides)
        report = metrics["report"]
        if self.is_main:
            export_path = export_model(self.model, self.model_dir, {
                "image_size": list(self.cfg.data.image_size), "sides": list(sides),
                "test_metrics": {k: report[k] for k in ("qwk", "mae", "accuracy", "within_one")},
                "preset": self.cfg.source})
            storage.write_text_atomic(str(self.local_run_dir / "report.json"), json.dumps(report, indent=2))
            self._publish_run_files()
            if self.events.mode == "text":
                print(format_report(report), flush=True)
            self.events.emit("done", f"test QWK {report['qwk']:.4f}, MAE {report['mae']:.3f}; model exported to "
                                     f"{export_path}", test_qwk=report["qwk"], test_mae=report["mae"],
                             test_acc=report["accuracy"], test_within_one=report["within_one"],
                             per_grade_accuracy=report["per_grade_accuracy"], confusion=report["confusion"],
                             export_path=export_path, step=self.pos.global_step)
        distributed.barrier()
        return EXIT_OK


@dataclass
class PhaseContext:
    phase: int
    sides: tuple
    epochs: int
    steps_per_epoch: int
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    stopper: EarlyStopping
    sampler: ListSampler
    loader: DataLoader
    last_train_loss: float = math.nan
    last_samples_per_s: float = 0.0
    last_data_time: float = 0.0
    last_epoch_time: float = 0.0


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def one_line(exc: BaseException) -> str:
    """The error's own message. One re-raised from a DataLoader worker (e.g. an ImageError with
    data.cache off and num_workers > 0) carries the worker's traceback in its message; the last line of
    that is the original `module.Type: message`."""
    text = str(exc).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1]
    head, sep, message = last.partition(": ")
    return message if sep and head.rsplit(".", 1)[-1] == type(exc).__name__ else last


BAD_INPUT = (ConfigError, SplitsError, ImageError, CheckpointError, storage.StorageError, TrainingError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    trainer = None
    try:
        cfg = config_from_args(args)
        trainer = Trainer(cfg, log_format=args.log_format)
        return trainer.run()
    except BAD_INPUT as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
