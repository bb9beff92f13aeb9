"""The headless `--submit` flow end to end against the fake Vertex, Logging and GCS services (real client
libraries over real gRPC/HTTP on 127.0.0.1) and the stand-in docker in tests/bin."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from google.cloud import aiplatform_v1 as v1

from cockpit import cli_cloud
from cockpit.cli import main
from core.config import PRESETS_DIR

TESTS_BIN = Path(__file__).resolve().parent / "bin"
SCRIPT = ["loading 2 cards",
          {"severity": "INFO", "message": "epoch 1 phase 1", "event": "epoch", "phase": 1, "epoch": 1,
           "step": 10, "train_loss": 0.5, "val_loss": 0.6, "val_qwk": 0.25, "val_mae": 1.5, "lr": 0.001,
           "samples_per_s": 80.0},
          "done"]


def submit(*argv: str) -> int:
    """`psa-cockpit ARGV` through the real command line."""
    return main(list(argv))


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No credentials anywhere and no endpoint overrides: anything reaching for Google fails."""
    for var in ("PSA_VERTEX_ENDPOINT", "PSA_LOGGING_ENDPOINT", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    monkeypatch.setenv("PSA_STATE_POLL_S", "0.05")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def preset(offline):
    path = offline / "mytest.toml"
    path.write_text(f'extends = "{(PRESETS_DIR / "cloud.toml").as_posix()}"\n'
                    "[training]\nphase1_epochs = 1\nphase2_epochs = 1\n"
                    '[cloud]\nproject = "test-project"\nbucket = "gs://test-bucket"\nmax_cost_usd = 0.0\n')
    return str(path)


@pytest.fixture
def cloud(offline, fake_vertex):
    fake_vertex.log_script = list(SCRIPT)
    return fake_vertex


def test_successful_job_exits_0_and_prints_its_log(cloud, preset, capsys):
    assert submit("--submit", preset, "--no-build", "--tag", "t1") == 0
    out = capsys.readouterr().out
    assert "loading 2 cards" in out
    assert ("epoch 1 (phase 1): train_loss 0.5000  val_loss 0.6000  val_qwk 0.2500  val_mae 1.500  "
            "lr 1.00e-03  80 samples/s") in out
    assert out.rstrip().endswith("job 1000 JOB_STATE_SUCCEEDED")


def test_failed_job_exits_1_with_its_error(cloud, preset, capsys):
    cloud.default_outcome = "failed"
    assert submit("--submit", preset, "--no-build", "--tag", "t1") == 1
    captured = capsys.readouterr()
    assert "job 1000 JOB_STATE_FAILED" in captured.out
    assert "error: The replica workerpool0-0 exited with a non-zero status of 1." in captured.err


def test_cancelled_job_exits_3(cloud, preset):
    cloud.default_outcome = "cancelled"
    assert submit("--submit", preset, "--no-build", "--tag", "t1") == 3


def test_the_service_receives_the_preset_as_a_custom_job(cloud, preset):
    submit("--submit", preset, "--no-build", "--tag", "abc123", "--set", "training.batch_size=16",
           "--set", "cloud.spot=true", "--detach")
    job = cloud.received[0]
    container = job.job_spec.worker_pool_specs[0].container_spec
    assert container.image_uri == "us-central1-docker.pkg.dev/test-project/psa/psa-trainer:abc123"
    run = f"{job.display_name}-{job.labels['psa-request-id'][:8]}"  # unique per job (issue 12)
    assert list(container.args) == ["--preset", "presets/mytest.toml", "--mode", "cloud",
                                    "--set", f"output.dir=gs://test-bucket/psa-runs/{run}",
                                    "--set", "training.batch_size=16", "--set", "cloud.spot=true"]
    assert job.job_spec.scheduling.strategy == v1.Scheduling.Strategy.SPOT
    assert job.labels["psa-cockpit"] == "1" and job.labels["psa-preset"] == "mytest"
    assert job.job_spec.base_output_directory.output_uri_prefix == f"gs://test-bucket/psa-runs/{run}/"


def test_detach_prints_the_job_id_and_does_not_follow(cloud, preset, capsys):
    assert submit("--submit", preset, "--no-build", "--tag", "t1", "--detach") == 0
    assert capsys.readouterr().out == "1000\n"
    assert [kind for kind, _ in cloud.requests] == ["create"]


def test_dry_run_prints_custom_job_json_and_touches_no_network(preset, capsys):
    # `offline` only: no fake servers and no credentials, so any API call would fail
    assert submit("--submit", preset, "--dry-run", "--tag", "t1") == 0
    out = capsys.readouterr().out
    job = v1.CustomJob.from_json(out)
    assert job.job_spec.worker_pool_specs[0].machine_spec.machine_type == "n1-standard-8"
    assert json.loads(v1.CustomJob.to_json(job, use_integers_for_enums=False)) == json.loads(out)


def test_estimate_over_max_cost_is_refused_without_yes(cloud, preset, capsys):
    assert submit("--submit", preset, "--no-build", "--tag", "t1", "--set", "cloud.max_cost_usd=0.01") == 6
    err = capsys.readouterr().err
    assert err.startswith("error: estimated $") and "exceeds cloud.max_cost_usd = $0.01 in mytest.toml; " \
        "raise the limit or pass --yes" in err
    assert cloud.received == []


def test_yes_submits_over_the_cost_limit(cloud, preset):
    assert submit("--submit", preset, "--no-build", "--tag", "t1", "--set", "cloud.max_cost_usd=0.01",
                  "--yes", "--detach") == 0
    assert len(cloud.received) == 1


def test_no_credentials_and_no_override_exits_7_with_the_hint(preset, capsys):
    assert submit("--submit", preset, "--no-build", "--tag", "t1") == 7
    err = capsys.readouterr().err
    assert err == ("error: no Google Cloud credentials found; "
                   "run: gcloud auth application-default login\n")


def test_api_error_at_submit_exits_4(cloud, preset, capsys):
    import grpc
    cloud.create_error = grpc.StatusCode.PERMISSION_DENIED
    assert submit("--submit", preset, "--no-build", "--tag", "t1") == 4
    assert capsys.readouterr().err == ("error: create custom job: PERMISSION_DENIED: create refused by the "
                                       "fake; the account needs roles/aiplatform.user on the project (README: "
                                       "Who may do what)\n")


def test_bad_preset_exits_2_with_one_line(offline, capsys):
    bad = offline / "bad.toml"
    bad.write_text('[cloud]\nmachine_typ = "n1-standard-8"\n')
    assert submit("--submit", str(bad), "--dry-run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'cloud.machine_typ'" in err and "machine_type" in err


def test_upload_data_copies_the_splits_dir_and_points_the_job_at_it(cloud, preset, fake_gcs_bucket, offline):
    data = offline / "data" / "cards"
    (data / "img").mkdir(parents=True)
    (data / "splits.json").write_text(
        '{"version": 1, "train": [{"id": "c1", "front": "img/c1_front.jpg", "back": "img/c1_back.jpg", '
        '"grade": 9}], "val": [], "test": []}')
    (data / "img" / "c1_front.jpg").write_bytes(b"jpg")
    (data / "img" / "c1_back.jpg").write_bytes(b"jpg")
    # issue 12: the splits folder may be a project root; only what the splits name goes up
    (data / ".env").write_text("TOKEN=secret\n")
    (data / ".git").mkdir()
    (data / ".git" / "config").write_text("[core]\n")
    (data / "img" / "unlisted.jpg").write_bytes(b"jpg")
    assert submit("--submit", preset, "--no-build", "--tag", "t1", "--detach", "--upload-data",
                  "--set", f"cloud.bucket={fake_gcs_bucket}", "--set", f"data.splits={data / 'splits.json'}") == 0
    args = list(cloud.received[0].job_spec.worker_pool_specs[0].container_spec.args)
    assert args[-2:] == ["--set", f"data.splits=gs://{fake_gcs_bucket}/data/cards/splits.json"]
    from cockpit import clients
    names = sorted(b.name for b in clients.storage_client().list_blobs(fake_gcs_bucket))
    assert names == ["data/cards/img/c1_back.jpg", "data/cards/img/c1_front.jpg", "data/cards/splits.json"]


def test_upload_data_never_follows_a_symlink_out_of_the_splits_folder(cloud, preset, fake_gcs_bucket,
                                                                      offline, capsys):
    data = offline / "data" / "cards"
    (data / "img").mkdir(parents=True)
    (offline / "secret.jpg").write_bytes(b"private")
    (data / "img" / "c1_front.jpg").symlink_to(offline / "secret.jpg")
    (data / "img" / "c1_back.jpg").write_bytes(b"jpg")
    (data / "splits.json").write_text(
        '{"version": 1, "train": [{"id": "c1", "front": "img/c1_front.jpg", "back": "img/c1_back.jpg", '
        '"grade": 9}], "val": [], "test": []}')
    code = submit("--submit", preset, "--no-build", "--tag", "t1", "--detach", "--upload-data",
                  "--set", f"cloud.bucket={fake_gcs_bucket}", "--set", f"data.splits={data / 'splits.json'}")
    assert code == 2
    assert "c1_front.jpg" in capsys.readouterr().err
    from cockpit import clients
    assert list(clients.storage_client().list_blobs(fake_gcs_bucket)) == []
    assert cloud.received == []


@pytest.fixture
def docker(monkeypatch, offline):
    log = offline / "docker.log"
    monkeypatch.setenv("PATH", f"{TESTS_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_STUB_LOG", str(log))
    monkeypatch.setenv("DOCKER_STUB_DELAY", "0")
    return lambda: [json.loads(line)[0] if json.loads(line)[0] != "manifest" else "manifest"
                    for line in log.read_text().splitlines()] if log.exists() else []


def test_missing_image_is_built_and_pushed_before_submit(cloud, preset, docker, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_STUB_MODE", "missing")
    assert submit("--submit", preset, "--tag", "t1", "--detach") == 0
    assert docker() == ["manifest", "build", "push"]
    err = capsys.readouterr().err
    assert "#4 naming to us-central1-docker.pkg.dev/test-project/psa/psa-trainer:t1 done" in err


def test_existing_image_tag_skips_the_build(cloud, preset, docker, monkeypatch):
    monkeypatch.setenv("DOCKER_STUB_MODE", "ok")
    assert submit("--submit", preset, "--tag", "t1", "--detach") == 0
    assert docker() == ["manifest"]


def test_docker_failure_exits_5_and_submits_nothing(cloud, preset, docker, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_STUB_MODE", "daemon_down")
    assert submit("--submit", preset, "--tag", "t1") == 5
    assert "docker" in capsys.readouterr().err.lower()
    assert cloud.received == []


def test_ctrl_c_while_following_leaves_the_job_running(cloud, preset, monkeypatch, capsys):
    def interrupt(line):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_cloud, "format_line", interrupt)
    assert submit("--submit", preset, "--no-build", "--tag", "t1") == 130
    assert "Resume with: psa-cockpit logs 1000 --follow" in capsys.readouterr().err
    assert "cancel" not in [kind for kind, _ in cloud.requests]


# ----- jobs / logs / cancel / pull -------------------------------------------------------------------------

def _submitted(preset, *extra) -> str:
    assert submit("--submit", preset, "--no-build", "--tag", "t1", "--detach", *extra) == 0
    return "1000"


def test_jobs_lists_submitted_jobs_as_a_table(cloud, preset, capsys):
    _submitted(preset)
    capsys.readouterr()
    assert main(["jobs", "--preset", preset]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split() == ["ID", "NAME", "STATE", "MACHINE", "AGE", "COST"]
    assert row.split()[0] == "1000" and "QUEUED" in row and "n1-standard-8+1xT4" in row


def test_logs_prints_the_jobs_history(cloud, preset, capsys):
    job = _submitted(preset)
    cloud.advance_all(); cloud.advance_all()   # RUNNING: the job writes its log
    capsys.readouterr()
    assert main(["logs", job, "--preset", preset]) == 0
    out = capsys.readouterr().out
    assert "loading 2 cards" in out and "epoch 1 (phase 1)" in out and out.rstrip().endswith("done")


def test_logs_show_integer_fields_of_struct_payloads_as_integers(cloud, preset, capsys):
    # Cloud Logging hands every jsonPayload number back as a double (the fake does the same).
    cloud.log_script = [
        {"severity": "INFO", "message": "epoch 4 phase 2", "event": "epoch", "phase": 2, "epoch": 4, "epochs": 10,
         "step": 1200, "train_loss": 0.41, "val_loss": 0.52, "val_qwk": 0.87, "val_mae": 0.31, "lr": 0.00028,
         "samples_per_s": 412.5},
        {"severity": "INFO", "event": "checkpoint", "phase": 2, "epoch": 4, "step": 1200, "kind": "best"}]
    job = _submitted(preset)
    cloud.advance_all(); cloud.advance_all()
    capsys.readouterr()
    assert main(["logs", job, "--preset", preset]) == 0
    out = capsys.readouterr().out
    assert "epoch 4/10 (phase 2): train_loss 0.4100" in out
    (line,) = [ln for ln in out.splitlines() if "checkpoint: " in ln]  # a line without a message: its fields
    fields = set(line.split("checkpoint: ")[1].split(", "))
    assert fields == {"phase=2", "epoch=4", "step=1200", "kind=best"}


def test_logs_follow_exits_with_the_jobs_final_state(cloud, preset, capsys):
    cloud.default_outcome = "failed"
    job = _submitted(preset)
    assert main(["logs", job, "--follow", "--preset", preset]) == 1
    assert "job 1000 JOB_STATE_FAILED" in capsys.readouterr().out


def test_cancel_reports_the_new_state(cloud, preset, capsys):
    job = _submitted(preset)
    capsys.readouterr()
    assert main(["cancel", job, "--preset", preset]) == 0
    assert capsys.readouterr().out == "job 1000 JOB_STATE_CANCELLED\n"


def test_pull_downloads_the_exported_model(cloud, preset, fake_gcs_bucket, offline, capsys):
    job = _submitted(preset, "--set", f"cloud.bucket={fake_gcs_bucket}")
    base = cloud.jobs[job].job_spec.base_output_directory.output_uri_prefix
    model = offline / "trained" / "model"
    model.mkdir(parents=True)
    (model / "psa_dual_branch_state_dict.pth").write_bytes(b"weights")
    (model / "psa_dual_branch_config.json").write_text("{}")
    from cockpit.gcs import upload_dir
    upload_dir(offline / "trained", base)
    assert main(["pull", job, "--preset", preset, "--set", f"cloud.bucket={fake_gcs_bucket}"]) == 0
    assert (offline / "models" / job / "psa_dual_branch_state_dict.pth").read_bytes() == b"weights"
    assert f"model of job {job} -> models/{job}" in capsys.readouterr().out


def test_pull_before_export_says_nothing_is_there(cloud, preset, fake_gcs_bucket, capsys):
    job = _submitted(preset, "--set", f"cloud.bucket={fake_gcs_bucket}")
    assert main(["pull", job, "--preset", preset, "--to", "out"]) == 1
    assert "nothing under gs://" in capsys.readouterr().err
