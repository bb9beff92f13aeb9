"""The cockpit's whole cloud journey, in the TUI (Pilot) and headless, against the project's protocol peers:
the in-process Vertex JobService and Cloud Logging fakes, fake-gcs-server, and the stand-in docker.

open preset -> change a value -> save -> submit (F7) -> confirm -> build + push -> the CustomJob (exactly
what `--submit PRESET --dry-run` prints) -> log lines and plot points -> SUCCEEDED -> pull -> core.predict.
Failures (budget, API error) end in a dialog with the app alive and the preset unchanged.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.cloud import aiplatform_v1 as v1

from cockpit.catalog import PACKAGED_CATALOG
from cockpit.cli import main
from cockpit.tui.app import CockpitApp
from cockpit.tui.dialogs import ErrorDialog, SubmitDialog
from cockpit.tui.form import field_id
from core import storage
from tests.test_tui import show_form_section
from textual.widgets import Input

REPO = Path(__file__).resolve().parent.parent
SIZE = (100, 30)
EPOCHS = [{"severity": "INFO", "message": f"epoch {e} phase 1", "event": "epoch", "phase": 1, "epoch": e,
           "epochs": 2, "step": 10 * e, "train_loss": 1.5 / e, "val_loss": 1.6 / e, "val_qwk": 0.2 * e,
           "lr": 0.001 / e, "samples_per_s": 300.0, "eta_s": 60.0} for e in (1, 2)]
LOG_SCRIPT = ["container started", *EPOCHS, {"severity": "INFO", "message": "done", "event": "done"}]


@pytest.fixture
def tiny_model(tmp_path_factory) -> Path:
    """A real exported model (random weights, mobilenet_v3_small): what a finished job leaves in model/."""
    import torch

    from core.export import export_model
    from core.model import DualBranchGrader

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("export") / "model"
    export_model(DualBranchGrader("mobilenet_v3_small", dropout=0.0), str(out),
                 {"image_size": [48, 64], "sides": ["front", "back"]})  # what core.train adds
    return out


@pytest.fixture
def cards(tmp_path) -> tuple[str, str]:
    from PIL import Image

    paths = []
    for side, colour in (("front", (200, 180, 40)), ("back", (30, 60, 200))):
        path = tmp_path / f"card_{side}.jpg"
        Image.new("RGB", (80, 112), colour).save(path)
        paths.append(str(path))
    return paths[0], paths[1]


@pytest.fixture
def cloud_workdir(tmp_path, monkeypatch, fake_vertex, fake_gcs_bucket, docker_stub) -> Path:
    """Presets copied to a working directory, one of them (mycloud.toml) aimed at the fakes' project and
    bucket; the registry does not have the image yet (the stand-in docker says 'no such manifest')."""
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    (tmp_path / "presets/mycloud.toml").write_text(
        '# my first Vertex AI job\nextends = "cloud"\ndescription = "journey"\n\n'
        f'[training]\nphase1_epochs = 1\nphase2_epochs = 1\n\n'
        f'[cloud]\nproject = "test-project"\nbucket = "gs://{fake_gcs_bucket}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSA_CATALOG", str(PACKAGED_CATALOG))
    monkeypatch.setenv("PSA_STATE_POLL_S", "0.05")
    docker_stub.mode("missing")
    fake_vertex.running_gets = 30
    fake_vertex.log_script = list(LOG_SCRIPT)
    return tmp_path


def upload_model(model: Path, base_output_dir: str) -> None:
    """Stand in for the trainer: put the export where Vertex's AIP_MODEL_DIR points."""
    for name in ("psa_dual_branch_state_dict.pth", "psa_dual_branch_config.json"):
        storage.copy_to(model / name, storage.join(base_output_dir, "model", name))


def same_job(sent: v1.CustomJob, dry_run: dict) -> bool:
    """The CustomJob the fake received equals the dry run's, up to the one thing each submit draws afresh:
    its request id (a label, and the run folder's suffix), which makes a retried create find its job and
    two submits of one preset never share a folder (cockpit.vertex.build_custom_job)."""
    from cockpit.vertex import REQUEST_LABEL

    text = v1.CustomJob.to_json(sent, use_integers_for_enums=False)
    ours, theirs = sent.labels[REQUEST_LABEL], dry_run["labels"][REQUEST_LABEL]
    assert len(ours) == len(theirs) == 32 and ours != theirs
    return json.loads(text.replace(ours, theirs).replace(ours[:8], theirs[:8])) == dry_run


def dry_run_json(preset: str, tag: str, display_name: str) -> dict:
    """What `psa-cockpit --submit PRESET --dry-run` prints, from its own process (stdout is the JSON)."""
    proc = subprocess.run([sys.executable, "-m", "cockpit", "--submit", preset, "--dry-run", "--tag", tag,
                           "--display-name", display_name], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def predict(model_dir: Path, cards: tuple[str, str], capsys) -> dict:
    from core.predict import main as predict_main

    capsys.readouterr()
    assert predict_main(["--model", str(model_dir), *cards, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


async def wait_for(pilot, predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


async def open_form(pilot, section: str = "data") -> None:
    """The Presets form, ready, showing `section` (switched to with F9, as a user does)."""
    await wait_for(pilot, lambda: pilot.app.presets_section.ready)
    await show_form_section(pilot, section)


# -- the TUI ----------------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_tui_journey_edit_submit_build_follow_pull_predict(cloud_workdir, fake_vertex, docker_stub,
                                                                 tiny_model, cards, capsys):
    app = CockpitApp("presets/mycloud.toml", runs_dir=cloud_workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot, "training")
        box = app.query_one(f"#{field_id('training', 'batch_size')}", Input)
        box.value = "16"
        await pilot.pause()
        assert app.doc.dirty
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "batch_size = 16" in (cloud_workdir / "presets/mycloud.toml").read_text()

        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitDialog))
        shown = dict(app.screen.rows)
        assert shown["machine"] == "n1-standard-8 in us-central1"
        assert shown["GPUs"] == "1 x NVIDIA_TESLA_T4" and shown["pricing"] == "on-demand"
        assert shown["estimate"].startswith(tuple("0123456789")) and " h, $" in shown["estimate"]
        assert shown["max_cost_usd"] == "$50.00"
        assert shown["image"].startswith("us-central1-docker.pkg.dev/test-project/psa/psa-trainer:")
        await pilot.press("y")

        await wait_for(pilot, lambda: app.submitted is not None)
        build_lines = app.query_one("#build-log").lines
        assert any(line.strip().startswith("$ docker build -t ") for line in build_lines)
        assert [c[0] for c in docker_stub.calls()] == ["manifest", "build", "push"]
        assert str(REPO) == docker_stub.calls()[1][-1]  # built from the repository root

        created = fake_vertex.received[0]
        tag = created.job_spec.worker_pool_specs[0].container_spec.image_uri.rsplit(":", 1)[1]
        assert same_job(created, dry_run_json("presets/mycloud.toml", tag, created.display_name))
        upload_model(tiny_model, created.job_spec.base_output_directory.output_uri_prefix)

        run = app.run_section
        await wait_for(pilot, lambda: app.active_section == "run")
        await wait_for(pilot, lambda: run.epoch_lines == 2)
        assert any("container started" in line for line in run.log_view.lines)
        assert run.plots.curves.val_qwk == [0.2, 0.4]
        await wait_for(pilot, lambda: run.job.state == "JOB_STATE_SUCCEEDED")
        status = run.status_text()
        assert "SUCCEEDED" in status and "elapsed" in status and "cost $" in status

        await pilot.press("p")
        await wait_for(pilot, lambda: app.pulled is not None or isinstance(app.screen, ErrorDialog))
        assert not isinstance(app.screen, ErrorDialog), app.screen.message
    prediction = predict(app.pulled, cards, capsys)
    assert prediction["grade"] in range(1, 11) and len(prediction["probabilities"]) == 10


@pytest.mark.asyncio
async def test_tui_budget_refusal_is_a_dialog_and_keeps_the_edit(cloud_workdir, fake_vertex):
    preset = cloud_workdir / "presets/mycloud.toml"
    app = CockpitApp("presets/mycloud.toml", runs_dir=cloud_workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot, "cloud")
        box = app.query_one(f"#{field_id('cloud', 'max_cost_usd')}", Input)
        box.value = "0.01"
        await pilot.pause()
        before = preset.read_text()
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        message = app.screen.message
        assert "exceeds cloud.max_cost_usd = $0.01 in mycloud.toml" in message
        assert "raise cloud.max_cost_usd in Presets" in message
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and fake_vertex.received == []
        assert preset.read_text() == before                      # nothing written behind the user's back
        assert app.doc.dirty and box.value == "0.01"             # ... and the edit is still in the form
        assert app.doc.get("cloud", "max_cost_usd") == 0.01


@pytest.mark.asyncio
async def test_tui_api_error_is_a_dialog_naming_the_fix(cloud_workdir, fake_vertex, docker_stub):
    fake_vertex.create_error = grpc.StatusCode.RESOURCE_EXHAUSTED
    preset = cloud_workdir / "presets/mycloud.toml"
    before = preset.read_text()
    app = CockpitApp("presets/mycloud.toml", runs_dir=cloud_workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        message = app.screen.message
        assert message.startswith("create custom job: RESOURCE_EXHAUSTED: create refused by the fake; ")
        assert "request more Custom model training GPU quota" in message
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and not app.submitting and app.submitted is None
        assert app.query_one("#build-section").outcome == "failed"
        assert preset.read_text() == before and not app.doc.dirty


@pytest.mark.asyncio
async def test_tui_submit_of_an_invalid_preset_says_what_is_missing(cloud_workdir, fake_vertex):
    app = CockpitApp("presets/cloud.toml", runs_dir=cloud_workdir / "runs")  # no project, no bucket
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert app.screen.message.startswith("not submitted: presets/cloud.toml: cloud.project is empty; set it")
        assert app.is_running and fake_vertex.requests == []


# -- headless ---------------------------------------------------------------------------------------------

def test_headless_journey_submit_build_follow_pull_predict(cloud_workdir, fake_vertex, docker_stub,
                                                           tiny_model, cards, capsys):
    preset = "presets/mycloud.toml"
    assert main(["--submit", preset, "--set", "training.batch_size=16", "--tag", "j1", "--detach"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert [c[0] for c in docker_stub.calls()] == ["manifest", "build", "push"]
    created = fake_vertex.received[0]
    capsys.readouterr()
    assert main(["--submit", preset, "--set", "training.batch_size=16", "--dry-run", "--tag", "j1",
                 "--display-name", created.display_name]) == 0
    assert same_job(created, json.loads(capsys.readouterr().out))
    upload_model(tiny_model, created.job_spec.base_output_directory.output_uri_prefix)

    assert main(["logs", job_id, "--follow", "--preset", preset]) == 0
    out = capsys.readouterr().out
    assert "container started" in out and "epoch 2/2 (phase 1)" in out
    assert out.rstrip().endswith(f"job {job_id} JOB_STATE_SUCCEEDED")
    assert main(["pull", job_id, "--to", "pulled", "--preset", preset]) == 0
    prediction = predict(cloud_workdir / "pulled", cards, capsys)
    assert prediction["grade"] in range(1, 11)
    assert os.path.isfile(cloud_workdir / "pulled" / "psa_dual_branch_config.json")
