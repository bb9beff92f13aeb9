"""Train the dual-branch PSA grader: `python -m core.train --preset local|cloud|FILE [--set k=v ...]`.

The same loop runs on a laptop, in the Vertex AI container and on a GPU VM. Read top to bottom:
  setup()         device, ranks, run directory, data (core/data.py), model
  run()           resume? -> phase 1 (back branch only) -> phase 2 (both branches) -> finish()
  train_phase()   optimizer and schedule, then epochs: train, evaluate, early stopping, checkpoints
  train_epoch()   micro-batches, gradient accumulation, AMP, the LR schedule, preemption checks
  _end_of_epoch() the "epoch" line, best/last/numbered checkpoints
  finish()        test report, inference time, export, the "done" line
A checkpoint's position plus its model, optimizer, schedule and RNG states continue a run mid-epoch with
a bitwise-identical result: sample order and augmentation are pure functions of (seed, phase, epoch, rank).
Plumbing lives beside what it serves: checkpoint contents and a run's files in core/checkpoint.py, optimizer
and LR schedule in core/schedulers.py, the AMP step in core/device.py, loaders in core/data.py, metrics across
ranks in core/evaluate.py, the metric lines' fields in core/events.py, the output dirs in core/run_dir.py.
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import traceback
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader

from core import checkpoint, distributed, latency, sampling, storage
from core.augment import AugmentSeed
from core.checkpoint import CheckpointError, Position
from core.concurrent_sides import side_threads_for
from core.config import Config, ConfigError, config_to_toml
from core.data import EvalLoaders, ImageError, model_inputs, prepare_datasets, train_loader
from core.device import make_compute, pick_device, seed_everything
from core.early_stopping import EarlyStopping
from core.evaluate import evaluate_shards
from core.events import (EventWriter, ProgressBar, add_epoch_scalars, done_fields, epoch_fields, one_line,
                         open_tensorboard, start_fields)
from core.export import export_trained
from core.losses import grading_loss
from core.metrics import format_report
from core.model import WeightsError, build_model, recompute_batchnorm
from core.preemption import EXIT_PREEMPTED, PreemptionHandler
from core.reads import read_shifts
from core.records import SplitsError, require_centering_labels
from core.run_dir import RunDir
from core.schedulers import make_optimizer_and_scheduler
from core.train_args import build_parser, config_from_args

EXIT_OK, EXIT_BAD_INPUT = 0, 2
TARGET_KEYS = ("grade", "edge", "edge_mask", "centering", "center_mask", "subgrades")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a NaN loss); the message is one line, the last good checkpoint stays."""


class Preempted(Exception):
    """Raised inside the loop after the preemption checkpoint is written."""


@dataclass(frozen=True)
class PhasePlan:
    """What one phase trains with; built once by train_phase and never changed."""
    phase: int
    sides: tuple
    epochs: int
    steps_per_epoch: int
    net: torch.nn.Module          # the model as trained: compiled and/or DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: object
    stopper: EarlyStopping
    order: sampling.EpochOrder    # the loader's index list, set per epoch
    loader: DataLoader


class Trainer:
    def __init__(self, cfg: Config, log_format: str = "auto"):
        self.cfg = cfg
        self.denv = distributed.dist_env_from_environ()
        self.is_main = self.denv.rank == 0
        self.events = EventWriter(log_format, enabled=self.is_main)
        self.preemption = PreemptionHandler()
        self.pos = Position()
        self.history: list[dict] = []
        self.resume_state: dict | None = None   # the checkpoint being resumed, until its phase loads it
        self.last_save_s = 0.0
        self.tb = None  # TensorBoard writer, set in setup(); run()'s cleanup reads it even if setup fails
        self.side_threads = None  # the model's second thread (core/concurrent_sides.py), likewise

    # ------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg, t = self.cfg, self.cfg.training
        self.device = pick_device(self.denv.local_rank)
        distributed.init_distributed(self.denv, self.device)
        self.compute = make_compute(self.device, t.precision,
                                    warn=lambda m: self.events.emit("warning", m, severity="WARNING"))
        seed_everything(t.seed, t.deterministic, self.device)
        self.run_dir = RunDir(cfg.output, self.is_main)  # also resolves and checks the checkpoint and model dirs
        self.run_dir.open(self.events, config_to_toml(cfg))
        self.splits, self.datasets = prepare_datasets(cfg.data, self.is_main, self.events.emit)
        if cfg.model.measure_centering:
            require_centering_labels(self.splits)
        self.eval_loader = EvalLoaders(self.datasets, cfg, self.device, self.denv.rank, self.denv.world_size)
        self.model = build_model(cfg.model, self.device, cfg.data.crop_size, cfg.data.crop_fraction, cfg.data.detail,
                                 cfg.data.edge_crops, cfg.data.detail_kind)
        # On a CPU, the front's and the back's networks at once, each on half the threads (core/concurrent_sides.py)
        self.side_threads = side_threads_for(cfg.model.concurrent_sides, self.device, self.denv.world_size,
                                             cfg.model.compile)
        self.model.side_threads = self.side_threads
        if t.use_sampler:  # what the grade-balanced draw does to the heads' prior, taken back when read
            train = self.splits.train
            self.model.set_prior_shift(*sampling.sampler_prior_shift(
                [r.grade for r in train], [r.subgrades for r in train], t.sampler_power, self.model.num_grades))
        self.model_signature = {**self.model.config(), "image_size": list(cfg.data.image_size)}
        self.ckpts = checkpoint.RunCheckpoints(self.run_dir.checkpoint_dir, self.model_signature, writer=self.is_main)
        self.tb = open_tensorboard(self.run_dir.tensorboard_dir, self.events) if self.is_main else None
        self.events.emit("start", f"training {cfg.model.backbone} on {len(self.splits.train)} cards "
                                  f"({self.device.type}, {self.compute.precision}, world size {self.denv.world_size})",
                         **start_fields(cfg, self.device, self.compute.precision, self.denv.world_size, self.splits,
                                        self.ckpts.dir, self.run_dir.model_dir, self.side_threads is not None))

    # -------------------------------------------------------------------------------------------- run
    def run(self) -> int:
        self.preemption.install()
        try:
            self.setup()
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
            if self.side_threads:
                self.side_threads.close()
            self.events.close()
            distributed.cleanup()

    def _maybe_resume(self) -> None:
        self.resume_state = self.ckpts.resume(self.cfg.output.resume,
                                              info=lambda m, **fields: self.events.emit("info", m, **fields),
                                              warn=lambda m: self.events.emit("warning", m, severity="WARNING"))
        if self.resume_state is not None:
            self.pos = Position(**self.resume_state["position"])
            self.history = list(self.resume_state.get("history", []))

    # ------------------------------------------------------------------------------------------ phase
    def train_phase(self, phase: int) -> None:
        t, es = self.cfg.training, self.cfg.early_stopping
        sides, epochs, lr = ((("back",), t.phase1_epochs, t.lr_phase1) if phase == 1
                             else (("front", "back"), t.phase2_epochs, t.lr_phase2))
        state, self.resume_state = self.resume_state, None
        resuming = state is not None and state["position"]["phase"] == phase
        if phase == 2 and not resuming and t.phase1_epochs > 0:
            self.model.init_from_phase1(self.ckpts.load_best(1, self.device)["model"])
        # Phase 1 trains only the back branch: freezing the front keeps DDP from waiting on its grads.
        for p in self.model.front.parameters():
            p.requires_grad_(phase == 2)
        train_set = self.datasets["train"][sides]
        steps_per_epoch = sampling.steps_per_epoch(len(train_set), self.denv.world_size, t)
        optimizer, scheduler = make_optimizer_and_scheduler(self.model, t, lr, steps_per_epoch * epochs, self.device)
        stopper = EarlyStopping(es.mode, es.patience, es.min_delta, es.enabled)
        if resuming:
            checkpoint.restore_training(state, self.denv.rank, model=self.model, optimizer=optimizer,
                                        scheduler=scheduler, scaler=self.compute.scaler, early_stopping=stopper)
        order = sampling.EpochOrder()
        net = distributed.wrap_model(self.model, self.cfg.model.compile, self.device)
        plan = PhasePlan(phase, sides, epochs, steps_per_epoch, net, optimizer, scheduler, stopper, order,
                         train_loader(train_set, order, self.cfg, self.device))
        while self.pos.epoch <= epochs and not stopper.should_stop:
            stats = self.train_epoch(plan)
            metrics = {**self.evaluate("val", sides), **stats}
            improved = stopper.update(metrics[es.metric], self.pos.epoch)
            self._end_of_epoch(plan, metrics, improved)
            if stopper.should_stop:
                self.events.emit("early_stop", f"phase {phase}: no {es.metric} improvement for {stopper.patience} "
                                               f"epochs; best {stopper.best:.4f} at epoch {stopper.best_epoch}",
                                 phase=phase, epoch=self.pos.epoch, best=stopper.best, best_epoch=stopper.best_epoch)
            self.pos = Position(phase, self.pos.epoch + 1, 0, self.pos.global_step, self.pos.phase_step)
            if self.preemption.agreed(self.pos.global_step, self.denv.world_size, epoch_end=True):
                self._report_preempted(plan, self.last_save_s)  # last.pth was just written for this point
        # Restore the phase's best weights (they are what phase 2 starts from and what gets exported).
        best = self.ckpts.load_best(phase, self.device)
        self.model.load_state_dict(best["model"])
        self.events.emit("info", f"phase {phase} done ({'early stop' if stopper.should_stop else 'all epochs'}); "
                                 f"restored best weights from epoch {best['epoch']}", phase=phase,
                         best_epoch=best["epoch"])

    # ------------------------------------------------------------------------------------------ epoch
    def train_epoch(self, plan: PhasePlan) -> dict:
        """Train from self.pos to the end of the epoch; returns the epoch's train stats."""
        t, pos = self.cfg.training, self.pos
        accum, start = t.grad_accum_steps, pos.batches_done
        n_batches = plan.steps_per_epoch * accum
        order = sampling.epoch_indices([r.grade for r in self.splits.train], t.seed * 1000 + plan.phase * 100,
                                       pos.epoch, self.denv.rank, self.denv.world_size,
                                       t.sampler_power if t.use_sampler else None)
        plan.order.indices = order[start * t.batch_size: n_batches * t.batch_size]
        plan.net.train()
        bar = ProgressBar(n_batches - start, f"phase {plan.phase} epoch {pos.epoch}/{plan.epochs}")
        loss_sum = torch.full((), pos.loss_sum, device=self.device)  # summed on the device: no per-step sync
        loss_count = pos.loss_count
        samples, data_time, t0 = 0, 0.0, time.perf_counter()
        ddp = isinstance(plan.net, torch.nn.parallel.DistributedDataParallel)
        step_loss = None
        t_data = time.perf_counter()
        for i, batch in enumerate(plan.loader):
            data_time += time.perf_counter() - t_data
            last = (i + 1) % accum == 0
            # Each micro-batch loss is a mean, so dividing by accum makes the sum equal one big batch's; DDP
            # all-reduces gradients on the last micro-batch only.
            with (plan.net.no_sync() if ddp and not last else contextlib.nullcontext()):
                loss = self._loss(plan, batch, batch_index=pos.batches_done) / accum
                self.compute.scaler.scale(loss).backward()
            step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
            pos.batches_done += 1
            if not last:
                t_data = time.perf_counter()
                continue
            self.compute.step(plan.optimizer, t.max_grad_norm)  # unscale, clip, step, update the loss scale
            plan.scheduler.step()
            samples += len(batch["grade"]) * accum
            pos.global_step += 1
            pos.phase_step += 1
            loss_sum += step_loss
            loss_count += 1
            step_loss = None
            bar.update(pos.batches_done - start)
            if pos.global_step % t.log_every_steps == 0:
                mean_loss = self._check_finite(loss_sum / loss_count, plan.phase)  # the one host sync per interval
                self.events.emit("step", f"step {pos.global_step} loss {mean_loss:.4f}", phase=plan.phase,
                                 epoch=pos.epoch, step=pos.global_step, train_loss=mean_loss,
                                 lr=plan.optimizer.param_groups[0]["lr"],
                                 samples_per_s=samples * self.denv.world_size / max(time.perf_counter() - t0, 1e-9))
            if self.preemption.agreed(pos.global_step, self.denv.world_size):
                # a diverged model must not replace the last good last.pth (issue 12): raises TrainingError
                self._check_finite(loss_sum / max(loss_count, 1), plan.phase)
                mid_epoch = replace(pos, loss_sum=float(loss_sum), loss_count=loss_count)
                self._report_preempted(plan, self._save_training_state(plan, "last.pth", mid_epoch))
            t_data = time.perf_counter()
        bar.close()
        if t.bn_recompute_batches:  # fresh BatchNorm statistics for these weights, on clean images
            recompute_batchnorm(self.model, self.eval_loader("train", plan.sides, t.bn_recompute_batches),
                                lambda b: model_inputs(b, plan.sides, self.device, self.cfg.model.channels_last),
                                self.compute.autocast)
        distributed.broadcast_buffers(self.model)
        elapsed = time.perf_counter() - t0
        return {"train_loss": self._check_finite(loss_sum / loss_count, plan.phase) if loss_count else math.nan,
                "samples_per_s": samples * self.denv.world_size / max(elapsed, 1e-9),
                "data_time_s": data_time, "epoch_time_s": elapsed}

    def _loss(self, plan: PhasePlan, batch: dict, batch_index: int) -> torch.Tensor:
        # Augmentation is seeded by the batch's place in the epoch: a resumed run repeats it exactly.
        aug = (AugmentSeed(self.cfg.training.seed, plan.phase, self.pos.epoch,
                           batch_index * self.denv.world_size + self.denv.rank) if self.cfg.data.augment else None)
        inputs = model_inputs(batch, plan.sides, self.device, self.cfg.model.channels_last, aug)
        with self.compute.autocast():
            outputs = plan.net(**inputs)
        return self._grading_loss(outputs, batch)

    def _grading_loss(self, outputs: dict, batch: dict) -> torch.Tensor:
        l = self.cfg.loss
        return grading_loss(outputs, {k: batch[k].to(self.device, non_blocking=True) for k in TARGET_KEYS},
                            l.alpha_emd, l.beta_edge, l.beta_center, l.beta_criteria)[0]

    def _check_finite(self, value: torch.Tensor, phase: int) -> float:
        v = float(value)
        if not math.isfinite(v):
            raise TrainingError(f"loss is {v} at phase {phase} epoch {self.pos.epoch} step "
                                f"{self.pos.global_step}: lower the learning rate (training.lr_phase{phase}) "
                                f"or use precision 'fp32'; the last good checkpoint is kept in {self.ckpts.dir}")
        return v

    def _report_preempted(self, plan: PhasePlan, seconds: float) -> None:
        self.preemption.report(self.events, self.ckpts.dir, seconds, phase=plan.phase, epoch=self.pos.epoch,
                               step=self.pos.global_step, batches_done=self.pos.batches_done)
        self.run_dir.publish()
        raise Preempted()

    # ------------------------------------------------------------------------------------ evaluation
    def evaluate(self, split: str, sides, reads: int = 1) -> dict:
        """val_loss, val_qwk, val_mae, val_acc and the report of a split over all ranks (each one calls it),
        each card read `reads` times (core/reads.py; the loss from the first read, the scans as they are)."""
        loaders = [self.eval_loader(split, sides, shift=shift) for shift in read_shifts(reads)]
        # The bare model, not the DDP wrapper: ranks' shards may differ in batch count, and DDP's
        # forward would wait for a buffer broadcast the other ranks never join.
        return evaluate_shards(self.model, zip(*loaders), self.compute.autocast,
                               lambda b: model_inputs(b, sides, self.device, self.cfg.model.channels_last),
                               self._grading_loss)

    # ----------------------------------------------------------------------------------- bookkeeping
    def _end_of_epoch(self, plan: PhasePlan, metrics: dict, improved: bool) -> None:
        """Report the epoch (metrics = validation results + train_epoch's stats), save best/last/numbered
        checkpoints. Called on every rank with self.pos still at the epoch just trained."""
        pos, phase = self.pos, plan.phase
        self._check_finite(torch.tensor(metrics["val_loss"]), phase)
        remaining = (plan.epochs - pos.epoch) + (self.cfg.training.phase2_epochs if phase == 1 else 0)
        fields = epoch_fields(phase, pos.epoch, plan.epochs, pos.global_step, metrics,
                              plan.optimizer.param_groups[0]["lr"], remaining, improved)
        self.history.append(fields)
        self.events.emit("epoch", f"epoch {pos.epoch} phase {phase} val_qwk {metrics['val_qwk']:.4f}", **fields)
        add_epoch_scalars(self.tb, phase, fields, pos.global_step)
        if improved and self.is_main:
            seconds = self.ckpts.save_best(self.model, phase, pos.epoch, metrics, self.cfg.model.reads)
            self.events.emit("checkpoint", f"new best {self.cfg.early_stopping.metric} "
                                           f"{plan.stopper.best:.4f}: phase{phase}_best.pth",
                             phase=phase, epoch=pos.epoch, kind="best", save_s=round(seconds, 3))
        # Saved as the next epoch's start (batch 0), so a resume from here starts there.
        next_epoch = Position(phase, pos.epoch + 1, 0, pos.global_step, pos.phase_step)
        # Numbered over the whole run (phase 2 continues phase 1's count) so names never collide.
        run_epoch = pos.epoch + (self.cfg.training.phase1_epochs if phase == 2 else 0)
        self.last_save_s = self._save_training_state(plan, "last.pth", next_epoch)
        if self.cfg.output.save_every and run_epoch % self.cfg.output.save_every == 0:
            self._save_training_state(plan, f"checkpoint_epoch_{run_epoch}.pth", next_epoch)
        if self.is_main:
            self.ckpts.prune(self.cfg.output.keep_last)
            self.run_dir.publish()
        distributed.barrier()

    def _save_training_state(self, plan: PhasePlan, name: str, position: Position) -> float:
        """Everything a resume at `position` needs; every rank's RNG state, written by rank 0."""
        all_rng = distributed.gather_objects(checkpoint.rng_state())
        if not self.is_main:
            return 0.0
        path, seconds = self.ckpts.save_training(
            name, position, all_rng, model=self.model, optimizer=plan.optimizer, scheduler=plan.scheduler,
            scaler=self.compute.scaler, early_stopping=plan.stopper, history=self.history, config=self.cfg.to_dict())
        self.events.emit("checkpoint", f"saved {name} in {seconds:.2f}s", phase=plan.phase, epoch=position.epoch,
                         step=position.global_step, path=path, kind=name.split("_")[0].removesuffix(".pth"),
                         save_s=round(seconds, 3))
        return seconds

    # ---------------------------------------------------------------------------------------- finish
    def finish(self) -> int:
        sides = ("front", "back") if self.cfg.training.phase2_epochs > 0 else ("back",)
        reads = self.cfg.model.reads  # validation reads each card once: the epochs' numbers stay comparable
        report = {**self.evaluate("test", sides, reads)["report"], "reads": reads}
        if self.is_main:
            cards = latency.sample_cards(self.datasets["test"][sides], sides)
            report["inference"] = latency.measure(self.model, cards, self.cfg.training.eval_batch_size, reads)
            export_path = export_trained(self.model, self.run_dir.model_dir, sides, report, self.cfg)
            self.run_dir.write_text("report.json", json.dumps(report, indent=2))
            self.run_dir.publish()
            if self.events.mode == "text":
                print(format_report(report), flush=True)
            self.events.emit("done", f"test QWK {report['qwk']:.4f}, MAE {report['mae']:.3f}; model exported to "
                                     f"{export_path}", **done_fields(report), export_path=export_path,
                             step=self.pos.global_step)
        distributed.barrier()
        return EXIT_OK


BAD_INPUT = (ConfigError, SplitsError, ImageError, CheckpointError, storage.StorageError, TrainingError,
             WeightsError, distributed.DistributedConfigError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        if args.print_config:
            print(f"# effective config of {cfg.source}\n{config_to_toml(cfg)}", end="")
            return EXIT_OK
        return Trainer(cfg, log_format=args.log_format).run()
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
