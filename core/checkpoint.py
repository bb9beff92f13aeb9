"""Checkpoints that survive preemption: write, verify, then publish; find the newest complete one.

A checkpoint is written to a temp file beside its final name, checked (torch.save's zip container has a
CRC per member, so `testzip` catches a torn write), then published with os.replace. For gs:// the
verified local file is uploaded through core.storage, which never replaces a good object with a partial
upload. A reader therefore sees either the previous checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import io
import os
import random
import re
import tempfile
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import storage
from core.config import LEGACY_DETAIL_KIND

EPOCH_RE = re.compile(r"^checkpoint_epoch_(\d+)\.pth$")
STEP_RE = re.compile(r"^checkpoint_step_(\d+)\.pth$")
BEST_RE = re.compile(r"^phase(\d+)_best\.pth$")


@dataclass
class Position:
    """Where training is: enough to continue exactly here (saved in every training checkpoint)."""
    phase: int = 1
    epoch: int = 1            # 1-based epoch within the phase
    batches_done: int = 0     # micro-batches already consumed in this epoch
    global_step: int = 0      # optimizer steps over the whole run
    phase_step: int = 0       # optimizer steps in this phase (drives the LR schedule)
    loss_sum: float = 0.0     # this epoch's running train loss so far, so a resumed epoch reports the same
    loss_count: int = 0


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not fit this run; the message names the file."""


def _verify_file(path: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint (bad member {bad})")


def save(state: dict[str, Any], dest: str) -> float:
    """Atomically write `state` to dest (local or gs://). Returns seconds taken."""
    t0 = time.perf_counter()
    if storage.is_gcs(dest):
        with tempfile.TemporaryDirectory(prefix="psa-ckpt-") as tmpdir:
            local = os.path.join(tmpdir, os.path.basename(dest))
            _save_local(state, local)
            storage.copy_to(local, dest)
    else:
        _save_local(state, dest)
    return time.perf_counter() - t0


def _save_local(state: dict[str, Any], dest: str) -> None:
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        _verify_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (weights_only: a checkpoint is data, never code)."""
    try:
        data = storage.read_bytes(path) if storage.is_gcs(path) else None
    except storage.StorageError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        if data is not None:
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        if not os.path.exists(path):
            raise CheckpointError(f"{path}: checkpoint not found")
        _verify_file(path)
        return torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # a torn or foreign file: any unpickling error means "not usable"
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None


def candidates(checkpoint_dir: str) -> list[str]:
    """Resumable checkpoints in a dir, newest first: last.pth, then step and epoch checkpoints.

    A missing dir lists as []. Any other listing failure (missing bucket, permission, GCS giving up
    after retries) is raised: starting fresh would overwrite the run's last.pth with step 0."""
    names = [os.path.basename(p.rstrip("/")) for p in storage.list_dir(checkpoint_dir)]
    ordered = []
    if "last.pth" in names:
        ordered.append("last.pth")
    numbered = []
    for n in names:
        for rx, rank in ((STEP_RE, 1), (EPOCH_RE, 0)):
            m = rx.match(n)
            if m:
                numbered.append((int(m.group(1)), rank, n))
    ordered += [n for *_, n in sorted(numbered, reverse=True)]
    return [storage.join(checkpoint_dir, n) for n in ordered]


def remove_stale_temp_files(checkpoint_dir: str) -> list[str]:
    """Delete temp files a killed writer left behind (each can be as big as a checkpoint).

    Only the local case: on gs:// the temp objects are named uniquely and core.storage deletes them
    itself, and listing never shows them. Call it before any writer of this run starts."""
    if storage.is_gcs(checkpoint_dir) or not os.path.isdir(checkpoint_dir):
        return []
    stale = [p for p in Path(checkpoint_dir).glob(".*.pth.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return [str(p) for p in stale]


def find_resumable(checkpoint_dir: str, warn=print) -> tuple[str, dict] | None:
    """The newest checkpoint that loads; corrupt ones are skipped with a warning.

    When last.pth cannot be read, the older checkpoints must all come from one run (their `run_id`):
    falling back across runs would silently continue somebody else's training, so that is a
    CheckpointError naming the runs and how to choose.
    """
    best: tuple[str, dict] | None = None
    loaded: list[tuple[str, dict]] = []
    for path in candidates(checkpoint_dir):
        try:
            state = load(path)
        except CheckpointError as exc:
            warn(f"skipping {exc}")
            continue
        if "global_step" not in state:
            continue
        loaded.append((path, state))
        if best is None or state["global_step"] > best[1]["global_step"]:
            best = (path, state)
        if os.path.basename(path) == "last.pth":
            return best  # last.pth is always the most recent write; no need to open older ones
    runs = {state.get("run_id") for _, state in loaded}
    if len(runs) > 1:
        shown = ", ".join(f"{os.path.basename(p)} (run {s.get('run_id') or 'unknown'})" for p, s in loaded[:4])
        raise CheckpointError(f"{checkpoint_dir}: last.pth is unreadable and the other checkpoints come from "
                              f"different runs ({shown}); set output.resume to the checkpoint to continue")
    return best


def resume_point(resume: str, checkpoint_dir: str, signature: dict, run_id: str = "", claim: bool = False,
                 warn=print, info=print) -> tuple[str, dict] | None:
    """(path, state) of the training checkpoint output.resume names ("auto": the newest one that loads
    in checkpoint_dir), or None to start fresh. A checkpoint of another architecture is refused.
    Starting fresh with `claim` (the writing rank) first moves another run's checkpoints aside."""
    if resume == "none":
        aside = claim_for_new_run(checkpoint_dir, run_id) if claim else None
        if aside:
            warn(f"{checkpoint_dir} held another run's checkpoints: moved them to {aside}")
        return None
    if resume == "auto":
        found = find_resumable(checkpoint_dir, warn=warn)
        if found is None:
            info(f"no checkpoint in {checkpoint_dir}: starting fresh")
            return None
        path, state = found
    else:
        path, state = resume, load(resume)
    if "global_step" not in state:
        raise CheckpointError(f"{path}: not a training checkpoint (use it with core.evaluate instead)")
    check_model_config(state["model_signature"], signature, path)
    return path, state


def new_run_id(env=os.environ) -> str:
    """This run's identity, saved in every checkpoint it writes. On Vertex AI the job id: a job that
    Vertex restarts (preemption) is the same run."""
    job = env.get("CLOUD_ML_JOB_ID")
    return f"vertex-{job}" if job else uuid.uuid4().hex


def claim_for_new_run(checkpoint_dir: str, run_id: str) -> str | None:
    """Before a run that does not resume writes into `checkpoint_dir`: make sure it holds no other run's
    checkpoints, so two runs never mix (and `prune`/resume never pick another run's files).

    A local dir holding another run's checkpoints is moved aside to CHECKPOINT_DIR.previous-TIME (the
    new path is returned); a gs:// prefix cannot be moved cheaply, so that is a CheckpointError.
    """
    names = [os.path.basename(p.rstrip("/")) for p in storage.list_dir(checkpoint_dir)]
    ours = [n for n in names if n == "last.pth" or EPOCH_RE.match(n) or STEP_RE.match(n) or BEST_RE.match(n)]
    if not ours:
        return None
    newest = candidates(checkpoint_dir)
    try:
        owner = load(newest[0]).get("run_id") if newest else None
    except CheckpointError:
        owner = None
    if owner == run_id:
        return None  # our own job, restarted by Vertex AI
    shown = ", ".join(sorted(ours)[:3]) + (", ..." if len(ours) > 3 else "")
    if storage.is_gcs(checkpoint_dir):
        raise CheckpointError(f"{checkpoint_dir}: holds another run's checkpoints ({shown}); output.resume = "
                              "\"none\" would mix the two runs: set output.resume = \"auto\" to continue that "
                              "run, or choose another output.dir")
    base = checkpoint_dir.rstrip("/")
    aside = f"{base}.previous-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while os.path.exists(aside):
        n += 1
        aside = f"{base}.previous-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    os.replace(base, aside)
    return aside


def load_best(checkpoint_dir: str, phase: int, signature: dict, map_location="cpu") -> dict[str, Any]:
    """phaseN_best.pth, refused in one line when another architecture wrote it (issue 12)."""
    path = storage.join(checkpoint_dir, f"phase{phase}_best.pth")
    best = load(path, map_location)
    check_model_config(best.get("model_signature") or {}, signature, path)
    return best


def prune(checkpoint_dir: str, keep_last: int, pattern: re.Pattern = EPOCH_RE,
          owned: set[str] | None = None) -> list[str]:
    """Delete all but the newest `keep_last` checkpoints matching pattern. Returns what was deleted.

    `owned` (file names) limits it to the checkpoints this run wrote: another run's files are never
    deleted, whatever their numbers."""
    try:
        names = [os.path.basename(p.rstrip("/")) for p in storage.list_dir(checkpoint_dir)]
    except (storage.StorageError, FileNotFoundError):
        return []
    if owned is not None:
        names = [n for n in names if n in owned]
    numbered = sorted((int(m.group(1)), n) for n in names if (m := pattern.match(n)))
    doomed = [storage.join(checkpoint_dir, n) for _, n in numbered[:-keep_last]] if keep_last else []
    for path in doomed:
        storage.delete(path)
    return doomed


def check_model_config(saved: dict, current: dict, path: str) -> None:
    """A checkpoint from a different architecture fails with the mismatched keys named."""
    if saved.get("detail") and "detail_kind" not in saved:  # made before there were two kinds of detail map
        saved = {**saved, "detail_kind": LEGACY_DETAIL_KIND}
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        shown = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs preset {current.get(k)!r}" for k in diff[:4])
        raise CheckpointError(f"{path}: checkpoint was made with a different model config ({shown})")


def rng_state() -> dict:
    """This process's generators (python, numpy, torch, cuda), as tensors and tuples weights_only loads."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(all_rng: list, rank: int) -> None:
    """Set the generators to what rank `rank` saved (rank 0's when the run had fewer ranks)."""
    rng = all_rng[rank] if rank < len(all_rng) else all_rng[0]
    random.setstate(_as_tuple(rng["python"]))
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def training_state(position: Position, rng: list, *, model, optimizer, scheduler, scaler, early_stopping,
                   model_signature: dict, history: list, config: dict, run_id: str,
                   epoch_checkpoints: list[str]) -> dict[str, Any]:
    """What a training checkpoint (last.pth, checkpoint_epoch_N.pth) holds: the state_dict of each object
    restore_training loads back, where to continue (`position`, and its global_step, which
    find_resumable compares), every rank's generators (`rng`: rng_state() gathered from all ranks), the
    architecture check_model_config compares, the epoch history, the effective config, the run's
    identity and the epoch checkpoints it wrote (the only ones prune may delete)."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "early_stopping": early_stopping.state_dict(),
            "position": asdict(position), "global_step": position.global_step, "rng": rng,
            "model_signature": model_signature, "history": history, "config": config, "run_id": run_id,
            "epoch_checkpoints": epoch_checkpoints}


class RunCheckpoints:
    """One training run's checkpoints in `directory`: its identity and the files it writes and reads.

    Every checkpoint carries the run's id (new_run_id, or the resumed checkpoint's), so two runs never
    mix (issue 12); the epoch checkpoints this run wrote (`owned`, saved in each training checkpoint) are
    the only ones prune may delete. `writer` is the rank that writes (rank 0): only it tidies and claims
    the directory."""

    def __init__(self, directory: str, signature: dict, writer: bool):
        self.dir, self.signature, self.writer = directory, signature, writer
        self.run_id = new_run_id()
        self.owned: set[str] = set()

    def resume(self, resume: str, warn=print, info=print) -> dict | None:
        """The training checkpoint output.resume names (resume_point), or None to start fresh; first the
        writer removes the temp files a killed write left. A resumed run takes over the checkpoint's run
        id and owned epoch checkpoints; info(message, resumed_from=path, **position) says where it goes on."""
        if self.writer:
            for path in remove_stale_temp_files(self.dir):
                info(f"removed {path}: left by an interrupted checkpoint write")
        found = resume_point(resume, self.dir, self.signature, self.run_id, claim=self.writer, warn=warn, info=info)
        if found is None:
            return None
        path, state = found
        self.run_id = state.get("run_id") or self.run_id
        self.owned = set(state.get("epoch_checkpoints", []))
        pos = state["position"]
        info(f"resuming from {path}: phase {pos['phase']} epoch {pos['epoch']} batch {pos['batches_done']} "
             f"(step {pos['global_step']})", resumed_from=path, **pos)
        return state

    def save_training(self, name: str, position: Position, rng: list, **contents) -> tuple[str, float]:
        """Write training_state(position, rng, **contents) as `name` (last.pth or checkpoint_epoch_N.pth,
        which then lists itself among the owned); -> (path, seconds taken)."""
        if name.startswith("checkpoint_epoch_"):
            self.owned.add(name)
        state = training_state(position, rng, model_signature=self.signature, run_id=self.run_id,
                               epoch_checkpoints=sorted(self.owned), **contents)
        path = storage.join(self.dir, name)
        return path, save(state, path)

    def save_best(self, model, phase: int, epoch: int, metrics: dict, reads: int = 1) -> float:
        """Write phaseN_best.pth: the weights, the architecture load_best checks, the epoch's validation
        metrics (val_loss, val_qwk, val_mae, val_acc of `metrics`) and how many reads grade a card
        (model.reads, core/reads.py: evaluated from this file, it reads as the export does); -> seconds taken."""
        best = {"model": model.state_dict(), "model_signature": self.signature, "phase": phase,
                "run_id": self.run_id, "epoch": epoch, "reads": reads,
                "metrics": {k: metrics[k] for k in ("val_loss", "val_qwk", "val_mae", "val_acc")}}
        return save(best, storage.join(self.dir, f"phase{phase}_best.pth"))

    def load_best(self, phase: int, map_location="cpu") -> dict[str, Any]:
        """This directory's phaseN_best.pth, refused when another architecture wrote it."""
        return load_best(self.dir, phase, self.signature, map_location)

    def prune(self, keep_last: int) -> list[str]:
        """Delete all but the newest keep_last epoch checkpoints among those this run owns."""
        return prune(self.dir, keep_last, owned=self.owned)


def restore_training(state: dict, rank: int, **parts) -> None:
    """Load a training checkpoint into the objects that hold it (model=, optimizer=, scheduler=, scaler=,
    early_stopping=: each has load_state_dict) and set this rank's generators to what it saved."""
    for key, obj in parts.items():
        obj.load_state_dict(state[key])
    restore_rng(state["rng"], rank)


def _as_tuple(x):
    # random.setstate wants nested tuples; a checkpoint may hand back lists.
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
