"""psa-cockpit: start-up without heavy imports, exit codes, one-line errors, local run/logs/cancel/pull."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from cockpit import local_runs
from cockpit.cli import main
from cockpit.local_runs import LocalBackend

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "textual", "google.cloud.aiplatform", "google.cloud.aiplatform_v1",
         "google.cloud.logging_v2", "google.cloud.storage", "grpc")


def test_help_imports_nothing_heavy():
    code = ("import sys, json; from cockpit.cli import main; rc = main(['--help']); "
            f"print(json.dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [0, []]


def test_entry_point_help_exits_0():
    exe = Path(sys.executable).parent / "psa-cockpit"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.startswith("usage: psa-cockpit")


def test_python_m_cockpit_help_exits_0():
    out = subprocess.run([sys.executable, "-m", "cockpit", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "--submit PRESET" in out.stdout


def test_unknown_flag_is_a_usage_error(capsys):
    assert main(["validate", "x.toml", "--frobnicate"]) == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_validate_ok_prints_a_summary(capsys):
    assert main(["validate", "presets/cloud.toml"]) == 0
    assert capsys.readouterr().out == (
        f"ok: {REPO}/presets/cloud.toml: resnet50 224x320, 10+30 epochs, batch 32; cloud: n1-standard-8 + "
        f"1 x NVIDIA_TESLA_T4 in us-central1\n")


def test_validate_for_submit_requires_the_project(capsys):
    assert main(["validate", "cloud", "--for-submit"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {REPO}/presets/cloud.toml: cloud.project is empty")


def test_debug_shows_the_traceback(capsys):
    assert main(["--debug", "validate", "no-such-preset"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.endswith(
        "error: preset 'no-such-preset' not found (a file path or one of: cloud, local, smoke)\n")


def test_unexpected_errors_are_one_line_with_exit_1(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr("cockpit.cli.cmd_validate", boom)
    assert main(["validate", "cloud"]) == 1
    assert capsys.readouterr().err == "error: unexpected RuntimeError: disk on fire (run with --debug for the traceback)\n"


def test_estimate_prints_both_prices(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local runs here: the default table is the source
    assert main(["estimate", str(REPO / "presets/cloud.toml")]) == 0
    out = capsys.readouterr().out
    assert "on-demand $" in out and "spot $" in out and "default table (resnet50" in out


def test_estimate_says_when_over_the_cost_limit(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["estimate", str(REPO / "presets/cloud.toml"), "--set", "cloud.max_cost_usd=0.01"]) == 0
    assert "cloud.max_cost_usd $0.01; --submit would need --yes" in capsys.readouterr().out


def test_submit_forwards_every_flag(monkeypatch):
    seen = {}
    monkeypatch.setattr("cockpit.submit.run_submit", lambda args: seen.update(vars(args)) or 0)
    argv = ["--submit", "cloud", "--no-build", "--upload-data", "--detach", "--dry-run", "--yes",
            "--set", "training.batch_size=8", "--set", "model.dropout=0.1", "--tag", "v1"]
    assert main(argv) == 0
    assert {k: seen[k] for k in ("submit", "no_build", "upload_data", "detach", "dry_run", "yes", "set", "tag")} \
        == {"submit": "cloud", "no_build": True, "upload_data": True, "detach": True, "dry_run": True, "yes": True,
            "set": ["training.batch_size=8", "model.dropout=0.1"], "tag": "v1"}


def test_submit_returns_the_submit_exit_code(monkeypatch):
    monkeypatch.setattr("cockpit.submit.run_submit", lambda args: 6)
    assert main(["--submit", "cloud"]) == 6


def test_submit_with_a_command_is_a_usage_error(capsys):
    assert main(["--submit", "cloud", "jobs"]) == 2
    assert capsys.readouterr().err == "error: --submit cannot be combined with the 'jobs' command\n"


def test_no_arguments_open_the_tui_on_the_local_preset(monkeypatch):
    seen = []
    monkeypatch.setitem(sys.modules, "cockpit.tui.app", types.SimpleNamespace(run_tui=lambda p: seen.append(p) or 0))
    assert main([]) == 0 and seen == ["presets/local.toml"]


def test_a_preset_argument_opens_the_tui_on_it(monkeypatch):
    seen = []
    monkeypatch.setitem(sys.modules, "cockpit.tui.app", types.SimpleNamespace(run_tui=lambda p: seen.append(p) or 0))
    assert main(["presets/smoke.toml"]) == 0 and seen == ["presets/smoke.toml"]


def test_missing_tui_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cockpit.tui.app", None)  # import raises ImportError
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the terminal UI is not available (") and err.count("\n") == 1


# ----- local runs through the CLI ----------------------------------------------------------------------

@pytest.fixture
def local_cli(tmp_path, monkeypatch, fake_trainer):
    """cwd = tmp_path (so outputs/runs is the tests'), and the fake trainer as the default trainer."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(local_runs, "DEFAULT_TRAINER", fake_trainer)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    (tmp_path / "p.toml").write_text('[model]\nbackbone = "mobilenet_v3_small"\n')
    return tmp_path


def test_run_prints_readable_epoch_lines_and_exits_0(local_cli, capsys):
    assert main(["run", "p.toml"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1 (phase 2): train_loss 1.2000  val_loss 1.1000  val_qwk 0.4100  val_mae 1.200  lr 2.00e-03  " \
           "45 samples/s" in out
    assert "plain text line from the trainer" in out
    assert out.rstrip().endswith("JOB_STATE_SUCCEEDED")


def test_run_exits_2_when_the_trainer_rejects_its_input(local_cli, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "bad_input")
    assert main(["run", "p.toml"]) == 2
    assert capsys.readouterr().err == "error: splits.json: 3 images missing\n"


def test_run_exits_1_when_the_trainer_crashes(local_cli, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "crash")
    assert main(["run", "p.toml"]) == 1


def test_run_refuses_a_bad_preset_before_starting(local_cli, capsys):
    (local_cli / "bad.toml").write_text("[training]\nbatch_size = 0\n")
    assert main(["run", "bad.toml"]) == 2
    assert capsys.readouterr().err == f"error: {local_cli}/bad.toml: training.batch_size = 0 must be >= 1\n"
    assert not (local_cli / "outputs").exists()


def test_logs_cancel_pull_and_jobs_dispatch_local_ids(local_cli, capsys):
    backend = LocalBackend(Path("outputs/runs"))
    info = backend.wait(backend.submit(Path("p.toml")).id, timeout=30)
    capsys.readouterr()
    assert main(["logs", info.id]) == 0
    assert "epoch 1 (phase 1): train_loss 1.5000" in capsys.readouterr().out
    assert main(["cancel", info.id]) == 0
    assert capsys.readouterr().out == f"job {info.id} JOB_STATE_SUCCEEDED\n"  # already finished
    assert main(["pull", info.id, "--to", "m"]) == 0
    assert (local_cli / "m" / "psa_dual_branch_config.json").is_file()
    assert main(["jobs"]) == 0
    captured = capsys.readouterr()
    assert info.id in captured.out and "SUCCEEDED" in captured.out
    assert captured.err.startswith("note: Vertex AI jobs not listed:")


def test_logs_of_an_unknown_local_run_exits_2(local_cli, capsys):
    assert main(["logs", "local-20990101-000000-abcd"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown local run 'local-20990101-000000-abcd'")


def test_ctrl_c_during_run_cancels_the_trainer_and_exits_3(local_cli, fake_trainer):
    import os
    import signal
    import time

    # A shell starts background jobs with SIGINT ignored and children inherit that; a user at a terminal
    # has the default handler, so the driver puts it back (else Ctrl-C would never reach it here).
    driver = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "from cockpit import local_runs; "
              f"local_runs.DEFAULT_TRAINER = {fake_trainer!r}; "
              "from cockpit.cli import main; sys.exit(main(['run', 'p.toml']))")
    env = {**os.environ, "FAKE_TRAINER_MODE": "slow", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=local_cli, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    for line in proc.stdout:  # wait until the trainer is printing epochs
        if "epoch 2 (phase 1)" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)  # generous: a loaded CI machine is slow to start Python
    assert proc.returncode == 3
    assert "JOB_STATE_CANCELLED" in out and "cancelling local-" in err
    run = next((local_cli / "outputs" / "runs").iterdir())
    assert json.loads((run / "run.json").read_text())["exit_code"] == 75  # SIGTERM: saved, then stopped


EVERY_COMMAND = [["jobs", "--preset", "cloud"], ["logs", "123", "--preset", "cloud"],
                 ["cancel", "123", "--preset", "cloud"], ["pull", "123", "--preset", "cloud"],
                 ["--submit", "cloud", "--no-build"], ["estimate", "cloud", "--set", "cloud.region=mars-1"],
                 ["validate", "cloud", "--for-submit"], ["run", "no-such-preset"]]


@pytest.mark.parametrize("argv", EVERY_COMMAND, ids=lambda a: a[0].lstrip("-"))
def test_every_command_gives_one_line_and_exit_2_and_debug_adds_the_traceback(argv, tmp_path, monkeypatch,
                                                                               capsys):
    """The cloud preset has no project: each command fails before any network call, the same way."""
    monkeypatch.chdir(tmp_path)  # no local runs here
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["--debug", *argv]) == 2
    debug_err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in debug_err and debug_err.endswith(err)
