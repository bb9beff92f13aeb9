"""Run `python -m core.train` as a subprocess and interrupt it at a chosen point (kill and resume tests).

Only stdout carries metric lines; stderr goes to a file so a chatty child can never block on a full pipe.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
# One intra-op thread per trainer: on a small shared machine two OpenMP threads that wait on each other
# made smoke steps 5-50x slower (0.15 s -> up to 17 s) whenever another process took a core.
CHILD_ENV = {"OMP_NUM_THREADS": "1"}


def child_env(extra: dict | None = None) -> dict:
    return {**os.environ, **CHILD_ENV, **(extra or {})}


@dataclass
class Run:
    code: int
    lines: list[dict]
    stderr: str
    signalled_at_step: int | None = None
    extra: dict = field(default_factory=dict)

    def events(self, name: str) -> list[dict]:
        return [line for line in self.lines if line.get("event") == name]

    @property
    def done(self) -> dict:
        done = self.events("done")
        assert done, f"no done line (exit {self.code}): {self.stderr[-1500:]}"
        return done[-1]


def trainer_cmd(*args: str, module: list[str] | None = None) -> list[str]:
    return [sys.executable, *(module or ["-m", "core.train"]), "--log-format", "json", *args]


def _parse(line: str) -> dict | None:
    if not line.startswith("{"):
        return None
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def metric_lines(text: str) -> list[dict]:
    return [p for p in map(_parse, text.splitlines()) if p is not None]


def run_trainer(args: list[str], tmp: Path, *, signal_at_step: int | None = None,
                sig: int = signal.SIGTERM, env: dict | None = None, timeout: float = 600,
                cmd: list[str] | None = None, signal_pid=None) -> Run:
    """Run the trainer to the end; with signal_at_step, send `sig` once a step line reaches that step
    (to the child, or to the pid that `signal_pid()` names, e.g. one worker under torchrun)."""
    tmp.mkdir(parents=True, exist_ok=True)
    err_path = tmp / f"stderr-{time.monotonic_ns()}.txt"
    lines: list[dict] = []
    sent_at = None
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd or trainer_cmd(*args), stdout=subprocess.PIPE, stderr=err, text=True,
                                cwd=ROOT, env=child_env(env))
        deadline = time.monotonic() + timeout
        try:
            for raw in proc.stdout:
                parsed = _parse(raw)
                if parsed is None:
                    continue
                lines.append(parsed)
                if (signal_at_step is not None and sent_at is None and parsed.get("event") == "step"
                        and parsed["step"] >= signal_at_step):
                    if signal_pid is None:
                        proc.send_signal(sig)
                    else:
                        os.kill(signal_pid(), sig)
                    sent_at = parsed["step"]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"trainer still running after {timeout:.0f} s")
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return Run(code, lines, err_path.read_text(), sent_at)


def kill_during_checkpoint_write(args: list[str], tmp: Path, ckpt_dir: Path, name: str = "last.pth",
                                 occurrence: int = 1, timeout: float = 600) -> Run:
    """SIGKILL the trainer in the middle of writing `name`, on its `occurrence`-th write.

    A write shows as a temp file `.NAME.*.tmp` until os.replace publishes it. When one appears the child
    is frozen with SIGSTOP; if the temp file is still there while it is frozen, the write is provably
    unfinished and SIGKILL lands mid-write. (If it was published meanwhile, the child is let go and the
    next write is taken.) stdout goes to a file, so this poll loop never waits on a pipe."""
    tmp.mkdir(parents=True, exist_ok=True)
    out_path, err_path = tmp / f"stdout-{time.monotonic_ns()}.txt", tmp / f"stderr-{time.monotonic_ns()}.txt"
    prefix = f".{name}."
    seen: set[str] = set()
    torn = None
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(trainer_cmd(*args), stdout=out, stderr=err, text=True, cwd=ROOT,
                                env=child_env())
        deadline = time.monotonic() + timeout
        try:
            while torn is None and proc.poll() is None and time.monotonic() < deadline:
                fresh = _temp_files(ckpt_dir, prefix) - seen
                if fresh and len(seen) + 1 >= occurrence:
                    proc.send_signal(signal.SIGSTOP)
                    still = fresh & _temp_files(ckpt_dir, prefix)
                    if still:
                        torn = sorted(still)[0]
                        proc.kill()
                    else:
                        proc.send_signal(signal.SIGCONT)
                seen |= fresh
                time.sleep(0.001)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [p for p in map(_parse, out_path.read_text().splitlines()) if p is not None]
    return Run(code, lines, err_path.read_text(), extra={"tmp_file": torn})


def _temp_files(directory: Path, prefix: str) -> set[str]:
    try:
        return {e.name for e in os.scandir(directory) if e.name.startswith(prefix) and e.name.endswith(".tmp")}
    except FileNotFoundError:
        return set()


def load_weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_tensors_equal(a, b, where: str = "") -> None:
    """Bitwise equality of nested state (dicts, lists, tensors, numbers), naming the first difference."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: tensors differ (max abs diff {(a.double() - b.double()).abs().max()})"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys differ: {sorted(set(a) ^ set(b))[:5]}"
        for k in a:
            assert_tensors_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tensors_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
