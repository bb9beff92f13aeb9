"""cockpit.vertex: the CustomJob a preset becomes, and VertexBackend against the fake JobService over gRPC."""
from __future__ import annotations

from datetime import timedelta

import pytest
from google.cloud import aiplatform_v1 as v1

from cockpit import clients
from cockpit.errors import CockpitError
from cockpit.vertex import VertexBackend, build_custom_job, custom_job_json
from core.config import load_preset

IMAGE = "us-central1-docker.pkg.dev/proj/psa/psa-trainer:abc1234"


def _cfg(**cloud):
    overrides = ["cloud.project=proj", "cloud.bucket=gs://my-bucket"]
    overrides += [f"cloud.{k}={v}" for k, v in cloud.items()]
    return load_preset("cloud", overrides)


def _job(cfg=None, overrides=()):
    return build_custom_job(cfg or _cfg(), "cloud", IMAGE, list(overrides), "psa-cloud-20250101-000000")


def test_chief_pool_has_machine_gpu_disk_and_one_replica():
    pool = _job().job_spec.worker_pool_specs[0]
    assert pool.replica_count == 1
    assert pool.machine_spec.machine_type == "n1-standard-8"
    assert pool.machine_spec.accelerator_type == v1.AcceleratorType.NVIDIA_TESLA_T4
    assert pool.machine_spec.accelerator_count == 1
    assert (pool.disk_spec.boot_disk_type, pool.disk_spec.boot_disk_size_gb) == ("pd-ssd", 100)


def test_replicas_beyond_one_become_a_worker_pool():
    pools = _job(_cfg(replica_count=3)).job_spec.worker_pool_specs
    assert [p.replica_count for p in pools] == [1, 2]
    assert pools[1].container_spec.args == pools[0].container_spec.args


def test_container_runs_the_baked_preset_in_cloud_mode_with_overrides():
    job = _job(overrides=["training.batch_size=64", "data.splits=gs://b/d/splits.json"])
    spec = job.job_spec.worker_pool_specs[0].container_spec
    assert spec.image_uri == IMAGE
    assert list(spec.command) == []  # the image's ENTRYPOINT (python -m core.train) runs
    base = job.job_spec.base_output_directory.output_uri_prefix.rstrip("/")
    # The run dir (training.log, config, report) goes to the job's output folder, before user overrides.
    assert list(spec.args) == ["--preset", "presets/cloud.toml", "--mode", "cloud",
                               "--set", f"output.dir={base}",
                               "--set", "training.batch_size=64", "--set", "data.splits=gs://b/d/splits.json"]
    assert {e.name: e.value for e in spec.env}["PYTHONUNBUFFERED"] == "1"


def test_scheduling_uses_spot_timeout_and_restart_setting():
    s = _job(_cfg(spot="true", timeout="90m", restart_job_on_worker_restart="false")).job_spec.scheduling
    assert s.strategy == v1.Scheduling.Strategy.SPOT
    assert s.timeout == timedelta(minutes=90)
    assert s.restart_job_on_worker_restart is False
    assert s.disable_retries is False


def test_on_demand_preset_uses_standard_strategy():
    assert _job().job_spec.scheduling.strategy == v1.Scheduling.Strategy.STANDARD


def test_labels_and_base_output_directory():
    job = _job()
    request_id = job.labels.pop("psa-request-id")
    assert dict(job.labels) == {"app": "psa-cockpit", "psa-cockpit": "1", "psa-preset": "cloud"}
    assert job.job_spec.base_output_directory.output_uri_prefix == \
        f"gs://my-bucket/psa-runs/psa-cloud-20250101-000000-{request_id[:8]}/"


def test_invalid_label_value_is_refused_with_the_label_named():
    cfg = _cfg()
    cfg.cloud.labels = {"team": "Data Science"}
    with pytest.raises(CockpitError, match=r"cloud.labels team = 'Data Science': label keys and values must be lowercase"):
        _job(cfg)


def test_empty_bucket_is_refused():
    cfg = load_preset("cloud", ["cloud.project=proj"])
    with pytest.raises(CockpitError, match="cloud.bucket is empty"):
        _job(cfg)


def test_cpu_only_job_has_no_accelerator():
    spec = _job(_cfg(accelerator_type='""', accelerator_count=0)).job_spec.worker_pool_specs[0].machine_spec
    assert spec.accelerator_count == 0
    assert spec.accelerator_type == v1.AcceleratorType.ACCELERATOR_TYPE_UNSPECIFIED


def test_dry_run_json_round_trips_through_from_json():
    job = _job()
    assert v1.CustomJob.from_json(custom_job_json(job)) == job


def test_dry_run_json_names_enums_like_the_rest_api():
    text = custom_job_json(_job(_cfg(spot="true")))
    assert '"acceleratorType": "NVIDIA_TESLA_T4"' in text and '"strategy": "SPOT"' in text


# ----- against the fake JobService ----------------------------------------------------------------------

def _backend(cfg=None):
    return VertexBackend(cfg or _cfg(), client=clients.job_client(cfg or _cfg()))


def test_created_job_arrives_intact_at_the_service(fake_vertex):
    job = _job(_cfg(spot="true"))
    info = _backend().create(job)
    assert fake_vertex.received == [job]
    assert info.id == "1000" and info.state == "JOB_STATE_QUEUED"
    assert info.resource_name == "projects/proj/locations/us-central1/customJobs/1000"


def test_job_info_carries_machine_gpu_and_hourly_cost(fake_vertex):
    info = _backend().create(_job())
    assert (info.machine_type, info.accelerator_type, info.accelerator_count) == \
        ("n1-standard-8", "NVIDIA_TESLA_T4", 1)
    assert info.hourly_cost_usd == pytest.approx(0.38 + 0.35, rel=0.01)


@pytest.mark.parametrize("outcome,final", [("succeeded", "JOB_STATE_SUCCEEDED"),
                                           ("failed", "JOB_STATE_FAILED"),
                                           ("cancelled", "JOB_STATE_CANCELLED")])
def test_job_moves_through_states_to_its_outcome(fake_vertex, outcome, final):
    fake_vertex.default_outcome = outcome
    backend = _backend()
    job_id = backend.create(_job()).id
    states = [backend.get(job_id).state for _ in range(4)]
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_RUNNING", final]


def test_failed_job_reports_the_error_message(fake_vertex):
    fake_vertex.default_outcome = "failed"
    backend = _backend()
    job_id = backend.create(_job()).id
    for _ in range(4):
        info = backend.get(job_id)
    assert info.error == "The replica workerpool0-0 exited with a non-zero status of 1."
    assert info.start_time and info.end_time


def test_cancel_moves_the_job_to_cancelled(fake_vertex):
    backend = _backend()
    job_id = backend.create(_job()).id
    assert backend.cancel(job_id).state == "JOB_STATE_CANCELLED"
    assert fake_vertex.requests[-2][0] == "cancel"


def test_list_follows_pages_and_filters_on_the_cockpit_label(fake_vertex):
    backend = _backend()
    ids = {backend.create(_job()).id for _ in range(5)}
    foreign = _job()
    del foreign.labels["psa-cockpit"]
    backend.create(foreign)
    listed = backend.list(page_size=2)
    assert {j.id for j in listed} == ids
    list_requests = [r for kind, r in fake_vertex.requests if kind == "list"]
    assert len(list_requests) == 3
    assert list_requests[0].filter == 'labels.psa-cockpit="1"'


def test_get_of_unknown_job_is_one_line_submit_error(fake_vertex):
    with pytest.raises(CockpitError) as err:
        _backend().get("999")
    assert err.value.exit_code == 4
    assert str(err.value).startswith("get job 999: NOT_FOUND: CustomJob projects/proj/")
    assert "\n" not in str(err.value)


def test_missing_project_is_refused():
    with pytest.raises(CockpitError, match="cloud.project is empty"):
        VertexBackend(load_preset("cloud"))
