"""Two processes under torchrun on CPU (gloo): the smoke preset trains, only rank 0 reports and writes,
the ranks hold the same weights, and a preemption signal seen by one rank stops them all for an exact resume.

The workers run tests/launchers/ddp_spy.py: core.train.main unchanged, plus a test-side spy that saves
each rank's model state at every epoch end (the product has no hook for this).
"""
import os
import sys
import uuid
from pathlib import Path

import pytest

from core.export import WEIGHTS_FILE
from core.preemption import EXIT_PREEMPTED
from tests.trainer_runs import assert_tensors_equal, load_weights, run_trainer

pytestmark = pytest.mark.slow  # each run starts three Python processes that import torch

EPOCHS = 3                  # 1 + 2
STEPS_PER_EPOCH = 3         # 96 training cards / 2 ranks / batch 16: each rank trains on its half


def torchrun_cmd(splits: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "tests/launchers/ddp_spy.py", "--log-format", "json", "--preset", "smoke",
            "--output-dir", str(out), "--set", f"data.splits={splits}", "--set", "training.deterministic=true",
            "--set", "training.log_every_steps=1", "--set", "model.dropout=0.2", *extra]


def run_ddp(splits: Path, out: Path, *extra: str, **kwargs):
    spy = out.parent / f"{out.name}-ranks"
    spy.mkdir(parents=True, exist_ok=True)
    env = {"PSA_TEST_RANK_WEIGHTS_DIR": str(spy), **kwargs.pop("env", {})}
    run = run_trainer([], out.parent / "logs", cmd=torchrun_cmd(splits, out, *extra), env=env, **kwargs)
    return run, spy


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, smoke_splits):
    out = tmp_path_factory.mktemp("ddp") / "run"
    run, spy = run_ddp(smoke_splits, out)
    assert run.code == 0, run.stderr[-3000:]
    return out, run, spy


def test_two_processes_train_the_smoke_preset_and_exit_0(ddp_run):
    out, run, _ = ddp_run
    (start,) = run.events("start")
    assert start["world_size"] == 2
    assert run.done["step"] == EPOCHS * STEPS_PER_EPOCH  # half the single-process steps: the data is sharded
    assert (out / "model" / WEIGHTS_FILE).is_file() and (out / "checkpoints" / "last.pth").is_file()


def test_only_rank_0_prints_metric_lines_and_writes_the_log(ddp_run):
    out, run, _ = ddp_run
    steps = [line["step"] for line in run.events("step")]
    assert steps == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))  # each step reported once
    assert [(e["phase"], e["epoch"]) for e in run.events("epoch")] == [(1, 1), (2, 1), (2, 2)]
    assert len(run.events("done")) == 1
    log = (out / "training.log").read_text().splitlines()
    assert len(log) == len(run.lines)  # one writer: every line once, nothing interleaved
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_ranks_hold_bitwise_identical_weights_and_statistics_after_every_epoch(ddp_run):
    out, _, spy = ddp_run
    rank0, rank1 = load_weights(spy / "rank0.pth"), load_weights(spy / "rank1.pth")
    assert list(rank0) == ["phase1_epoch1", "phase2_epoch1", "phase2_epoch2"]
    # Parameters and BatchNorm running statistics alike: what each rank evaluated is what rank 0 saved.
    assert_tensors_equal(rank0, rank1, "rank0 vs rank1")
    assert_tensors_equal(rank0["phase2_epoch2"], load_weights(out / "checkpoints" / "last.pth")["model"],
                         "rank0 vs last.pth")


def _worker_pid(run_id: str, rank: int) -> int:
    """The torchrun worker of this test run (marked by PSA_TEST_RUN_ID in its environment) with RANK=rank."""
    wanted = {f"PSA_TEST_RUN_ID={run_id}".encode(), f"RANK={rank}".encode()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= env:
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} found")


def test_sigterm_to_one_rank_stops_every_rank_and_the_resumed_run_matches(ddp_run, smoke_splits, tmp_path):
    ref_out, ref_run, _ = ddp_run
    out, run_id = tmp_path / "run", uuid.uuid4().hex
    # Only rank 1 gets the signal; rank 0 learns of it at the next step boundary and saves.
    first, _ = run_ddp(smoke_splits, out, "--resume", "auto", env={"PSA_TEST_RUN_ID": run_id},
                       signal_at_step=STEPS_PER_EPOCH + 2, signal_pid=lambda: _worker_pid(run_id, 1))
    assert first.code != 0, "torchrun reports workers that exit 75 as failed"
    assert f"exitcode  : {EXIT_PREEMPTED}" in first.stderr
    (preempted,) = first.events("preempted")  # printed by rank 0, which never got a signal
    assert preempted["step"] >= STEPS_PER_EPOCH + 2

    resumed, _ = run_ddp(smoke_splits, out, "--resume", "auto")
    assert resumed.code == 0, resumed.stderr[-3000:]
    (info,) = [i for i in resumed.events("info") if "resumed_from" in i]
    assert info["global_step"] == preempted["step"]
    assert_tensors_equal(load_weights(ref_out / "model" / WEIGHTS_FILE), load_weights(out / "model" / WEIGHTS_FILE),
                         "export")
    assert_tensors_equal(load_weights(ref_out / "checkpoints" / "last.pth")["model"],
                         load_weights(out / "checkpoints" / "last.pth")["model"], "last.pth")
    for key in ("test_qwk", "test_mae", "confusion", "step"):
        assert resumed.done[key] == ref_run.done[key], key
