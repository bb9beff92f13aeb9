"""Pilot tests of deploy / endpoints / undeploy in the TUI's Jobs section, against the in-process Vertex AI
fakes (tests/fakes/serving_server.py, whose Predict reaches a real core.serve) and the stand-in docker."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from google.cloud import aiplatform_v1 as v1

from cockpit.catalog import load_catalog
from cockpit.presets import PresetDocument
from cockpit.serving import ServingService
from cockpit.tui.app import CockpitApp
from cockpit.tui.dialogs import ConfirmDialog, ErrorDialog
from tests.test_tui import SIZE, ready, wait_for, workdir  # noqa: F401  (workdir is a fixture)

pytestmark = pytest.mark.asyncio


def cloud_preset_with_project(workdir) -> None:
    doc = PresetDocument.load(workdir / "presets/cloud.toml")
    doc.set("cloud", "project", "test-project")
    doc.set("cloud", "bucket", "gs://bucket")
    doc.save()


def add_job(fake_serving, job_id: str, state=v1.JobState.JOB_STATE_SUCCEEDED) -> None:
    job = v1.CustomJob(name=f"projects/test-project/locations/us-central1/customJobs/{job_id}", display_name="psa-cloud-x",
                       state=state, labels={"psa-cockpit": "1"}, create_time=datetime.now(timezone.utc))
    job.job_spec.base_output_directory.output_uri_prefix = f"gs://bucket/psa-runs/{job_id}/"
    fake_serving.jobs.jobs[job_id] = job


async def jobs_with_vertex_job(pilot) -> None:
    await ready(pilot)
    await pilot.press("f5")
    try:
        await wait_for(pilot, lambda: any(j.backend == "vertex" for j in pilot.app.jobs_section.jobs.values()),
                       timeout=30)
    except AssertionError:
        raise AssertionError(f"no Vertex job listed; note: {pilot.app.jobs_section.note!r}") from None


async def test_d_on_a_succeeded_job_shows_the_hourly_cost_then_deploys(workdir, fake_serving, docker_stub):
    cloud_preset_with_project(workdir)
    add_job(fake_serving, "901")
    app = CockpitApp("presets/cloud.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await jobs_with_vertex_job(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        price = load_catalog().hourly_price("n1-standard-4", "", 0, "us-central1")
        question = app.screen.question
        assert f"${price:,.2f}/hour" in question and "even when no request comes" in question
        assert not [k for k, _ in fake_serving.requests if k == "upload_model"]  # nothing before the yes
        await pilot.press("y")
        await wait_for(pilot, lambda: app.jobs_section.endpoints, timeout=20)
        (upload,) = [r for k, r in fake_serving.requests if k == "upload_model"]
        assert upload.model.artifact_uri == "gs://bucket/psa-runs/901/model/"
        assert upload.model.container_spec.image_uri.startswith("us-central1-docker.pkg.dev/test-project/")
        table = app.query_one("#endpoints-table")
        assert app.query_one("#endpoints").display and table.row_count == 1
        assert f"${price:,.2f}/h" in [str(c) for c in table.get_row_at(0)]


async def test_u_undeploys_the_selected_endpoint_after_asking(workdir, fake_serving):
    cloud_preset_with_project(workdir)
    add_job(fake_serving, "902")
    service = ServingService(project="test-project", region="us-central1")
    endpoint = service.deploy(service.plan("gs://bucket/psa-runs/902/model/"), "img:1")
    app = CockpitApp("presets/cloud.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await jobs_with_vertex_job(pilot)
        await wait_for(pilot, lambda: app.jobs_section.endpoints)
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert endpoint.id in app.screen.question and "stops billing" in app.screen.question
        await pilot.press("y")
        await wait_for(pilot, lambda: service.get(endpoint.id).deployed == [], timeout=15)
        await wait_for(pilot, lambda: app.jobs_section.endpoints and not app.jobs_section.endpoints[0].deployed)
        assert "$0.00/h" in [str(c) for c in app.query_one("#endpoints-table").get_row_at(0)]


async def test_d_on_a_failed_job_explains_instead_of_deploying(workdir, fake_serving):
    cloud_preset_with_project(workdir)
    add_job(fake_serving, "903", state=v1.JobState.JOB_STATE_FAILED)
    app = CockpitApp("presets/cloud.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await jobs_with_vertex_job(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "only a succeeded job" in app.screen.message
        assert not fake_serving.requests or all(k != "upload_model" for k, _ in fake_serving.requests)
