"""Exact resume: a run interrupted anywhere (SIGTERM, SIGKILL mid-write, a torn checkpoint) and resumed ends
with the very same weights and test metrics as a run that was never interrupted (bitwise, CPU, deterministic).

The trainer runs as a real subprocess (`python -m core.train`), the way Vertex AI and the cockpit run it.
Dropout is on (0.2, the presets' default), so the global RNG stream has to survive a resume too.
"""
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import checkpoint
from core.export import WEIGHTS_FILE
from core.preemption import EXIT_PREEMPTED
from core.train import main
from tests.trainer_runs import ROOT, assert_tensors_equal, kill_during_checkpoint_write, load_weights, run_trainer

STEPS_PER_EPOCH = 4  # 1 + 2 epochs of 4 steps: interruption points in both phases and across epochs
TOTAL_STEPS = 3 * STEPS_PER_EPOCH


def smoke_args(splits: Path, out: Path, *extra: str) -> list[str]:
    return ["--preset", "smoke", "--output-dir", str(out), "--set", f"data.splits={splits}",
            "--set", "training.deterministic=true", "--set", "training.log_every_steps=1",
            "--set", f"training.max_steps_per_epoch={STEPS_PER_EPOCH}", "--set", "output.save_every=1",
            "--set", "model.dropout=0.2", *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, smoke_splits):
    """The uninterrupted run every interrupted one is compared with."""
    out = tmp_path_factory.mktemp("reference")
    run = run_trainer(smoke_args(smoke_splits, out), out / "logs")
    assert run.code == 0, run.stderr[-2000:]
    assert run.done["step"] == TOTAL_STEPS
    return out, run


def assert_same_result(out: Path, runs: list, reference) -> None:
    """Final export, final training state and every reported metric equal the reference's."""
    ref_out, ref_run = reference
    assert_tensors_equal(load_weights(ref_out / "model" / WEIGHTS_FILE), load_weights(out / "model" / WEIGHTS_FILE),
                         "export")
    ref_last, last = load_weights(ref_out / "checkpoints" / "last.pth"), load_weights(out / "checkpoints" / "last.pth")
    for key in ("model", "optimizer", "scheduler", "early_stopping", "position"):
        assert_tensors_equal(ref_last[key], last[key], key)
    done = runs[-1].done
    for key in ("test_qwk", "test_mae", "test_acc", "test_within_one", "per_grade_accuracy", "confusion", "step"):
        assert done[key] == ref_run.done[key], key
    # Every epoch's losses and validation metrics, whichever process reported them (the resumed epoch's
    # train_loss includes the batches before the interruption).
    metrics = ("train_loss", "val_loss", "val_qwk", "val_mae")
    epochs = {(e["phase"], e["epoch"]): [e[k] for k in metrics] for r in runs for e in r.events("epoch")}
    assert epochs == {(e["phase"], e["epoch"]): [e[k] for k in metrics] for e in ref_run.events("epoch")}


def assert_preempted(run, at_least_step: int) -> dict:
    assert run.code == EXIT_PREEMPTED, run.stderr[-2000:]
    (line,) = run.events("preempted")
    assert line["severity"] == "WARNING" and line["step"] >= at_least_step
    assert 0 <= line["signal_to_saved_s"] < 30  # the Spot VM's notice
    assert not run.events("done")
    return line


@pytest.mark.slow
def test_sigterm_at_random_steps_then_resume_auto_ends_bitwise_equal(reference, smoke_splits, tmp_path):
    # Three seeded interruption points (one chain of runs: each resume is interrupted again), spread over
    # phase 1, phase 2's first and its second epoch; the last one leaves a step to go.
    rng = random.Random(3)
    points = [rng.randint(1, STEPS_PER_EPOCH - 1), rng.randint(STEPS_PER_EPOCH + 1, 2 * STEPS_PER_EPOCH),
              rng.randint(2 * STEPS_PER_EPOCH + 1, TOTAL_STEPS - 2)]
    out, runs, previous = tmp_path / "run", [], None
    for step in points:
        run = run_trainer(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs",
                          signal_at_step=step)
        preempted = assert_preempted(run, step)
        if previous is None:  # --resume auto in an empty dir starts fresh and says so
            assert any(i["message"].startswith("no checkpoint in ") for i in run.events("info"))
        else:  # it continued where the last one stopped, not from an epoch boundary
            (resumed,) = [i for i in run.events("info") if "resumed_from" in i]
            assert resumed["resumed_from"].endswith("last.pth")
            assert resumed["global_step"] == previous["step"]
            assert resumed["batches_done"] == previous["batches_done"]
        state = checkpoint.load(str(out / "checkpoints" / "last.pth"))
        assert state["position"]["global_step"] == preempted["step"]
        runs.append(run)
        previous = preempted
    final = run_trainer(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs")
    assert final.code == 0, final.stderr[-2000:]
    assert_same_result(out, runs + [final], reference)


@pytest.mark.slow
def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(reference, smoke_splits, tmp_path):
    out = tmp_path / "run"
    stop = 2 * STEPS_PER_EPOCH + 1  # inside phase 2's second epoch: last.pth is newer than any epoch file
    first = run_trainer(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs", signal_at_step=stop)
    assert_preempted(first, stop)
    last = out / "checkpoints" / "last.pth"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # what a torn copy (or a bad disk) would leave

    resumed = run_trainer(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs")
    assert resumed.code == 0, resumed.stderr[-2000:]
    (warning,) = [w for w in resumed.events("warning") if "last.pth" in w["message"]]
    assert warning["severity"] == "WARNING" and "truncated" in warning["message"]
    (info,) = [i for i in resumed.events("info") if "resumed_from" in i]
    assert info["resumed_from"].endswith("checkpoint_epoch_2.pth")  # end of phase 2's first epoch
    assert info["global_step"] == 2 * STEPS_PER_EPOCH and info["batches_done"] == 0
    assert_same_result(out, [first, resumed], reference)


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_checkpoint_write_never_publishes_a_torn_file(reference, smoke_splits,
                                                                                 tmp_path):
    out = tmp_path / "run"
    ckpt = out / "checkpoints"
    # The second write of last.pth is the end of phase 2's first epoch: the first one is still there.
    killed = kill_during_checkpoint_write(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs",
                                          ckpt, "last.pth", occurrence=2)
    assert killed.code == -signal.SIGKILL, killed.stderr[-2000:]
    assert killed.extra["tmp_file"], "the trainer finished before a write could be interrupted"
    assert (ckpt / killed.extra["tmp_file"]).exists()  # the torn bytes stayed under the temp name
    for path in ckpt.glob("*.pth"):  # everything published is complete
        checkpoint.load(str(path))
    published = [c for c in killed.events("checkpoint") if c.get("kind") == "last"]
    assert published, "no complete last.pth before the kill"

    resumed = run_trainer(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs")
    assert resumed.code == 0, resumed.stderr[-2000:]
    assert not (ckpt / killed.extra["tmp_file"]).exists()  # the resumed run cleaned the torn temp file up
    assert any("left by an interrupted checkpoint write" in i["message"] for i in resumed.events("info"))
    (info,) = [i for i in resumed.events("info") if "resumed_from" in i]
    assert info["resumed_from"].endswith("last.pth") and info["global_step"] == published[-1]["step"]
    assert_same_result(out, [killed, resumed], reference)


def test_a_second_signal_exits_at_once_with_128_plus_its_number():
    # The handler alone, in a child: the first SIGTERM only sets the flag, the second ends the process
    # from inside the handler, before the sleep can finish.
    code = ("import os, signal, time\n"
            "from core.preemption import PreemptionHandler\n"
            "h = PreemptionHandler().install()\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "assert h.requested and h.signum == signal.SIGTERM\n"
            "print('flag set', flush=True)\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\n"
            "print('still running', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert proc.stdout == "flag set\n"


def test_checkpoint_of_another_backbone_exits_2_naming_the_mismatched_key(reference, smoke_splits, tmp_path,
                                                                           capsys):
    ref_out, _ = reference
    path = str(ref_out / "checkpoints" / "last.pth")
    code = main(["--log-format", "json", *smoke_args(smoke_splits, tmp_path, "--resume", path,
                                                     "--set", "model.backbone=resnet18")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}: checkpoint was made with a different model config")
    assert "backbone: checkpoint 'mobilenet_v3_small' vs preset 'resnet18'" in err


def test_resume_of_a_missing_checkpoint_path_exits_2_naming_it(smoke_splits, tmp_path, capsys):
    missing = str(tmp_path / "nope" / "last.pth")
    code = main(["--log-format", "json", *smoke_args(smoke_splits, tmp_path, "--resume", missing)])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {missing}: checkpoint not found\n"

