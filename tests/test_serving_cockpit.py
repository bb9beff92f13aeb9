"""cockpit.serving and the deploy / endpoints / undeploy / predict commands, against in-process gRPC fakes of
the Vertex AI Model, Endpoint and Prediction services whose Predict reaches a real core.serve over HTTP."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from google.cloud import aiplatform_v1 as v1

from cockpit.catalog import load_catalog
from cockpit.cli import main
from cockpit.errors import CockpitError
from cockpit.serving import IDLE_WARNING, ServingService
from core.inference import load_model, predict_card

PROJECT = ["--project", "proj"]
MODEL_URI = "gs://bucket/psa-runs/job-a/model/"


def _finished_job(fake, job_id: str, state=v1.JobState.JOB_STATE_SUCCEEDED) -> None:
    job = v1.CustomJob(name=f"projects/proj/locations/us-central1/customJobs/{job_id}", display_name="psa-cloud",
                       state=state, create_time=datetime.now(timezone.utc))
    job.job_spec.base_output_directory.output_uri_prefix = f"gs://bucket/psa-runs/{job_id}/"
    fake.jobs.jobs[job_id] = job


def _requests(fake, kind: str) -> list:
    return [r for k, r in fake.requests if k == kind]


def test_deploy_uploads_the_model_creates_the_endpoint_and_deploys_dedicated_resources(fake_serving):
    service = ServingService(project="proj", region="us-central1")
    plan = service.plan(MODEL_URI, machine_type="n1-standard-8", min_replicas=1, max_replicas=3)
    price = load_catalog().hourly_price("n1-standard-8", "", 0, "us-central1")
    assert plan.hourly_cost_usd == pytest.approx(price) and plan.max_hourly_cost_usd == pytest.approx(3 * price)

    info = service.deploy(plan, "us-central1-docker.pkg.dev/proj/psa/psa-trainer-serve:abc")
    (upload,) = _requests(fake_serving, "upload_model")
    assert upload.model.artifact_uri == MODEL_URI
    spec = upload.model.container_spec
    assert spec.image_uri.endswith("psa-trainer-serve:abc")
    assert (spec.predict_route, spec.health_route, spec.ports[0].container_port) == ("/predict", "/health", 8080)
    (create,) = _requests(fake_serving, "create_endpoint")
    assert create.endpoint.display_name == "psa-grader" and create.endpoint.labels["psa-cockpit"] == "1"
    (deploy,) = _requests(fake_serving, "deploy_model")
    res = deploy.deployed_model.dedicated_resources
    assert (res.machine_spec.machine_type, res.min_replica_count, res.max_replica_count) == ("n1-standard-8", 1, 3)
    assert deploy.deployed_model.model == upload.model.name or deploy.deployed_model.model.endswith("/models/5000")
    assert len(info.deployed) == 1 and info.hourly_cost_usd == pytest.approx(price)


def test_a_second_deploy_reuses_the_endpoint_and_undeploys_the_old_model(fake_serving):
    service = ServingService(project="proj", region="us-central1")
    first = service.deploy(service.plan(MODEL_URI), "img:1")
    second = service.deploy(service.plan(MODEL_URI), "img:2")
    assert first.id == second.id and len(_requests(fake_serving, "create_endpoint")) == 1
    assert len(second.deployed) == 1 and second.deployed[0].id != first.deployed[0].id
    assert [r.deployed_model_id for r in _requests(fake_serving, "undeploy_model")] == [first.deployed[0].id]


def test_plan_refuses_a_local_model_and_bad_replicas_and_machines(fake_serving):
    service = ServingService(project="proj", region="us-central1")
    with pytest.raises(CockpitError, match="Cloud Storage"):
        service.plan("outputs/local/model")
    with pytest.raises(CockpitError, match="1 <= min <= max"):
        service.plan(MODEL_URI, min_replicas=2, max_replicas=1)
    with pytest.raises(CockpitError, match="not a known machine type"):
        service.plan(MODEL_URI, machine_type="n1-standard-3")
    assert not fake_serving.requests


def test_cli_deploy_of_a_job_shows_the_hourly_cost_and_idle_warning_then_deploys(fake_serving, capsys):
    _finished_job(fake_serving, "777")
    rc = main(["deploy", "777", "--yes", "--image", "img:1", *PROJECT])
    out = capsys.readouterr().out
    assert rc == 0, out
    price = load_catalog().hourly_price("n1-standard-4", "", 0, "us-central1")
    lines = out.splitlines()
    assert lines[0].startswith("endpoint psa-grader in us-central1: n1-standard-4") and f"${price:,.2f}/hour" in lines[0]
    assert lines[1] == f"warning: {IDLE_WARNING}"
    (upload,) = _requests(fake_serving, "upload_model")
    assert upload.model.artifact_uri == "gs://bucket/psa-runs/777/model/"
    assert "psa-cockpit undeploy" in out


def test_cli_deploy_without_yes_and_without_a_terminal_creates_nothing(fake_serving, capsys):
    rc = main(["deploy", MODEL_URI, "--image", "img:1", *PROJECT])
    captured = capsys.readouterr()
    assert rc == 6 and "pass --yes" in captured.err and captured.err.count("\n") == 1
    assert "warning:" in captured.out  # the cost was shown before the refusal
    assert not _requests(fake_serving, "upload_model")


def test_cli_deploy_of_an_unfinished_or_local_job_is_one_line(fake_serving, capsys):
    _finished_job(fake_serving, "778", state=v1.JobState.JOB_STATE_FAILED)
    assert main(["deploy", "778", "--yes", "--image", "img:1", *PROJECT]) == 2
    assert "only a SUCCEEDED job" in capsys.readouterr().err
    assert main(["deploy", "local-20260101-000000", "--yes", *PROJECT]) == 2
    assert "python -m core.serve" in capsys.readouterr().err
    assert not _requests(fake_serving, "upload_model")


def test_cli_deploy_builds_and_pushes_the_serve_target(fake_serving, docker_stub, capsys):
    docker_stub.mode("missing")  # the registry lacks the tag: build and push
    assert main(["deploy", MODEL_URI, "--yes", "--tag", "t1", *PROJECT]) == 0, capsys.readouterr()
    build = next(c for c in docker_stub.calls() if c[0] == "build")
    assert build[build.index("--target") + 1] == "serve"
    uri = build[build.index("-t") + 1]
    assert uri.endswith("-serve:t1") and ["push", uri] in docker_stub.calls()
    assert _requests(fake_serving, "upload_model")[0].model.container_spec.image_uri == uri


def test_cli_endpoints_lists_cost_per_hour_and_undeploy_stops_it(fake_serving, capsys):
    service = ServingService(project="proj", region="us-central1")
    info = service.deploy(service.plan(MODEL_URI), "img:1")
    price = load_catalog().hourly_price("n1-standard-4", "", 0, "us-central1")
    assert main(["endpoints", *PROJECT]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(info.id))
    assert "psa-grader" in row and "n1-standard-4" in row and f"${price:,.2f}/h" in row
    assert "bill about" in out

    assert main(["undeploy", info.id, *PROJECT]) == 0
    assert "no longer bills" in capsys.readouterr().out
    assert service.get(info.id).deployed == []
    assert main(["undeploy", info.id, *PROJECT]) == 2
    assert "nothing is billing" in capsys.readouterr().err


def test_cli_predict_on_an_endpoint_round_trips_through_the_real_server(fake_serving, tiny_model_dir, card_scans,
                                                                         capsys):
    service = ServingService(project="proj", region="us-central1")
    info = service.deploy(service.plan(MODEL_URI), "img:1")
    front, back = card_scans[0]
    assert main(["predict", "--endpoint", info.id, front, back, "--json", *PROJECT]) == 0
    got = json.loads(capsys.readouterr().out)
    want = predict_card(*load_model(tiny_model_dir), front, back)
    assert got["grade"] == want["grade"] and got["expected_grade"] == pytest.approx(want["expected_grade"], abs=1e-4)
    (req,) = _requests(fake_serving, "predict")
    assert req.endpoint.endswith(f"/endpoints/{info.id}")


def test_cli_predict_local_prints_the_grade_like_core_predict(grader_server, tiny_model_dir, card_scans, capsys):
    from core.predict import format_prediction

    front, back = card_scans[1]
    assert main(["predict", "--local", grader_server, front, back]) == 0
    out = capsys.readouterr().out
    want = predict_card(*load_model(tiny_model_dir), front, back)
    assert out.splitlines()[0] == format_prediction(want).splitlines()[0]


def test_cli_predict_local_errors_are_one_line(grader_server, card_scans, tmp_path, capsys):
    front, back = card_scans[0]
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    assert main(["predict", "--local", grader_server, str(bad), back]) == 4
    assert "HTTP 400: instances[0].front: not an image" in capsys.readouterr().err
    assert main(["predict", "--local", "http://127.0.0.1:9", front, back]) == 4
    assert "cannot reach the server" in capsys.readouterr().err
    assert main(["predict", "--local", grader_server, str(tmp_path / "none.jpg"), back]) == 2
    assert "cannot read the scan" in capsys.readouterr().err
