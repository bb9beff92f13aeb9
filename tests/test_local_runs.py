"""LocalBackend: trainer subprocesses behind the JobBackend interface (a miniature fake trainer)."""
from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

from cockpit.backend import JobBackend
from cockpit.errors import CockpitError
from cockpit.local_runs import LocalBackend, to_log_line


@pytest.fixture
def backend(tmp_path, fake_trainer):
    return LocalBackend(tmp_path / "runs", command_prefix=fake_trainer, cancel_grace_s=3.0)


@pytest.fixture
def preset(write_preset):
    return write_preset('[model]\nbackbone = "mobilenet_v3_small"\n', "run.toml")


def test_local_backend_implements_every_job_backend_method(backend):
    import inspect
    for name, member in inspect.getmembers(JobBackend, inspect.isfunction):
        if not name.startswith("_"):
            assert list(inspect.signature(getattr(backend, name)).parameters)[:len(
                inspect.signature(member).parameters) - 1] == list(inspect.signature(member).parameters)[1:], name
    assert backend.name == "local"


def test_submit_returns_a_running_job_with_a_local_id(backend, preset):
    info = backend.submit(preset)
    assert re.fullmatch(r"local-\d{8}-\d{6}-[0-9a-f]{4}", info.id)
    assert info.state == "JOB_STATE_RUNNING" and info.backend == "local" and info.name == "run"
    backend.wait(info.id, timeout=30)


def test_submit_passes_preset_overrides_and_output_dir(backend, preset):
    info = backend.submit(preset, ["training.batch_size=4", "model.dropout=0.1"])
    backend.wait(info.id, timeout=30)
    argv = json.loads((backend.runs_dir / info.id / "argv.json").read_text())
    assert argv == ["--preset", str(preset), "--set", "training.batch_size=4", "--set", "model.dropout=0.1",
                    "--output-dir", info.output_dir]


def test_exit_0_is_succeeded(backend, preset):
    info = backend.wait(backend.submit(preset).id, timeout=30)
    assert info.state == "JOB_STATE_SUCCEEDED" and info.end_time is not None
    assert backend.exit_code(info.id) == 0


def test_exit_2_is_failed_with_the_trainers_error_line(backend, preset, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "bad_input")
    info = backend.wait(backend.submit(preset).id, timeout=30)
    assert info.state == "JOB_STATE_FAILED"
    assert info.error == "splits.json: 3 images missing"
    assert backend.exit_code(info.id) == 2


def test_other_exit_codes_are_failed(backend, preset, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "crash")
    info = backend.wait(backend.submit(preset).id, timeout=30)
    assert (info.state, info.error) == ("JOB_STATE_FAILED", "trainer exited with code 1")


def test_logs_parse_metric_lines_and_keep_plain_ones(backend, preset):
    info = backend.submit(preset)
    backend.wait(info.id, timeout=30)
    lines = list(backend.logs(info.id))
    assert lines[1].text == "plain text line from the trainer" and lines[1].payload is None
    epochs = [ln for ln in lines if ln.payload and ln.payload["event"] == "epoch"]
    assert [e.payload["samples_per_s"] for e in epochs] == [90.0, 45.0]
    assert epochs[0].text == "epoch 1 phase 1" and epochs[0].severity == "INFO"
    assert epochs[0].timestamp is not None


def test_logs_follow_ends_with_the_run_and_misses_nothing(backend, preset):
    info = backend.submit(preset)
    events = [ln.payload["event"] for ln in backend.logs(info.id, follow=True) if ln.payload]
    assert events == ["start", "epoch", "epoch", "done"]


def test_logs_follow_stops_when_asked(backend, preset, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "slow")
    info = backend.submit(preset)
    stop = threading.Event()
    seen = []
    for line in backend.logs(info.id, follow=True, stop=stop, poll_s=0.02):
        seen.append(line)
        if len(seen) == 3:
            stop.set()
    assert len(seen) >= 3
    backend.cancel(info.id)


def test_cancel_sends_sigterm_and_ends_cancelled(backend, preset, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "slow")
    info = backend.submit(preset)
    _wait_for_line(backend, info.id, "epoch")
    info = backend.cancel(info.id)
    assert info.state == "JOB_STATE_CANCELLED"
    assert backend.exit_code(info.id) == 75  # the trainer saw SIGTERM and stopped after saving
    events = [ln.payload["event"] for ln in backend.logs(info.id) if ln.payload]
    assert events[-1] == "preempted"


def test_cancel_kills_a_trainer_that_ignores_sigterm(backend, preset, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "stubborn")
    backend.cancel_grace_s = 0.5
    info = backend.submit(preset)
    _wait_for_line(backend, info.id, "epoch")
    info = backend.cancel(info.id)
    assert info.state == "JOB_STATE_CANCELLED"
    assert backend.exit_code(info.id) == -9


def test_cancel_of_a_finished_run_changes_nothing(backend, preset):
    info = backend.wait(backend.submit(preset).id, timeout=30)
    assert backend.cancel(info.id).state == "JOB_STATE_SUCCEEDED"


def test_list_survives_a_cockpit_restart(backend, preset, tmp_path, fake_trainer):
    first = backend.wait(backend.submit(preset).id, timeout=30)
    second = backend.wait(backend.submit(preset).id, timeout=30)
    restarted = LocalBackend(tmp_path / "runs", command_prefix=fake_trainer)
    listed = restarted.list()
    assert [j.id for j in listed] == [second.id, first.id]  # newest first
    assert all(j.state == "JOB_STATE_SUCCEEDED" for j in listed)


def test_a_run_that_ended_unwatched_is_settled_from_its_log(backend, preset, tmp_path, fake_trainer):
    info = backend.submit(preset)
    run_dir = backend.runs_dir / info.id
    backend._procs[info.id].wait()
    meta = json.loads((run_dir / "run.json").read_text())
    time.sleep(0.3)  # the waiter thread records the end...
    meta.update(state="JOB_STATE_RUNNING", exit_code=None)  # ...pretend the cockpit died before it did
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert LocalBackend(tmp_path / "runs").get(info.id).state == "JOB_STATE_SUCCEEDED"


def test_pull_copies_the_exported_model(backend, preset, tmp_path):
    info = backend.wait(backend.submit(preset).id, timeout=30)
    to = backend.pull(info.id, tmp_path / "pulled")
    assert sorted(os.listdir(to)) == ["psa_dual_branch_config.json", "psa_dual_branch_state_dict.pth"]


def test_pull_without_a_model_says_so(backend, preset, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "crash")
    info = backend.wait(backend.submit(preset).id, timeout=30)
    with pytest.raises(CockpitError, match=f"{info.id}: no exported model in .*model \\(state JOB_STATE_FAILED\\)"):
        backend.pull(info.id, tmp_path / "pulled")


def test_unknown_run_id_is_one_line(backend):
    with pytest.raises(CockpitError, match=r"^unknown local run 'local-nope' \(no .*run.json\)$"):
        backend.get("local-nope")


def test_missing_preset_is_refused_before_starting(backend, tmp_path):
    with pytest.raises(CockpitError, match=r"preset '.*/nope.toml' not found"):
        backend.submit(tmp_path / "nope.toml")
    assert not (backend.runs_dir).exists()


def test_to_log_line_takes_severity_from_the_payload():
    line = to_log_line('{"severity":"WARNING","message":"slow data","event":"step","step":3}')
    assert (line.text, line.severity, line.payload["step"]) == ("slow data", "WARNING", 3)


def _wait_for_line(backend, job_id, event, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(ln.payload and ln.payload.get("event") == event for ln in backend.logs(job_id)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {event} line within {timeout}s")


@pytest.mark.slow
def test_real_trainer_smoke_run(tmp_path):
    """The real `python -m core.train` on presets/smoke.toml through LocalBackend."""
    backend = LocalBackend(tmp_path / "runs")
    info = backend.submit("presets/smoke.toml", [f"data.splits={tmp_path}/data/splits.json"])
    info = backend.wait(info.id, timeout=600)
    assert info.state == "JOB_STATE_SUCCEEDED", "\n".join(ln.text for ln in backend.logs(info.id))
    events = [ln.payload["event"] for ln in backend.logs(info.id) if ln.payload]
    assert events.index("start") < events.index("epoch") and events[-1] == "done"
    assert (backend.pull(info.id, tmp_path / "model") / "psa_dual_branch_config.json").is_file()
