"""Issue 12: everything read from a bucket, a preset, a splits file or the network is untrusted.

One section per item of the issue; each test fails on the code before the fix (the closing note,
/work/notes/issue-12.md, has the table).
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from cockpit import clients
from cockpit.errors import CockpitError
from core import storage
from core.config import ConfigError, load_preset

ROOT = Path(__file__).resolve().parent.parent


def _put(bucket: str, name: str, data: bytes) -> None:
    clients.storage_client().bucket(bucket).blob(name).upload_from_string(data)


# ---------------------------------------------------------------------------------------------------------
# 1. Containment: pull, the download cache, the FUSE mapping


def test_pull_refuses_an_object_that_would_land_outside_the_folder(fake_gcs_bucket, tmp_path):
    from cockpit.gcs import download_prefix

    outside = tmp_path / "home" / ".bashrc"
    _put(fake_gcs_bucket, "run/model/psa_dual_branch_config.json", b"{}")
    _put(fake_gcs_bucket, f"run/model/{outside}", b"evil")   # model//tmp/.../home/.bashrc
    with pytest.raises(CockpitError) as err:
        download_prefix(f"gs://{fake_gcs_bucket}/run/model/", tmp_path / "pulled")
    assert f"run/model/{outside}" in str(err.value) and "outside" in str(err.value)
    assert not outside.exists()
    assert not (tmp_path / "pulled" / "psa_dual_branch_config.json").exists()  # checked before writing


def test_pull_refuses_dot_dot_and_symlinked_escapes(fake_gcs_bucket, tmp_path):
    from cockpit.gcs import download_prefix

    pulled = tmp_path / "pulled"
    pulled.mkdir()
    (pulled / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _put(fake_gcs_bucket, "r/model/link/x.pth", b"evil")
    with pytest.raises(CockpitError, match="r/model/link/x.pth"):
        download_prefix(f"gs://{fake_gcs_bucket}/r/model/", pulled)
    assert not (tmp_path / "elsewhere").exists()


class _RecordingBlobs:
    """A real storage client whose listed blobs note the order they are downloaded in."""

    def __init__(self, client, order: list):
        self.client, self.order = client, order

    def list_blobs(self, *args, **kwargs):
        for blob in self.client.list_blobs(*args, **kwargs):
            real = blob.download_to_filename

            def download(filename, *a, _real=real, _name=blob.name, **kw):
                self.order.append(_name.rsplit("/", 1)[-1])
                return _real(filename, *a, **kw)

            blob.download_to_filename = download
            yield blob


def test_pull_writes_the_config_marker_last(fake_gcs_bucket, tmp_path):
    from cockpit.gcs import download_prefix

    for name in ("psa_dual_branch_config.json", "psa_dual_branch_state_dict.pth", "zz_notes.txt"):
        _put(fake_gcs_bucket, f"run/model/{name}", name.encode())
    order = []
    client = _RecordingBlobs(clients.storage_client(), order)
    assert download_prefix(f"gs://{fake_gcs_bucket}/run/model/", tmp_path / "m", client=client) == 3
    assert order[-1] == "psa_dual_branch_config.json" and len(order) == 3


@pytest.mark.parametrize("key", ["img/../../../escaped.jpg", "/img/abs.jpg"])
def test_download_cache_refuses_keys_that_leave_it(fake_gcs_bucket, tmp_path, key, monkeypatch):
    monkeypatch.setenv(storage.FUSE_ROOT_ENV, "")
    _put(fake_gcs_bucket, key, b"jpeg")
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(storage.StorageError, match="leave the download cache"):
        storage.local_copy(f"gs://{fake_gcs_bucket}/{key}", cache)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_fuse_mapping_never_reads_outside_the_mount(fake_gcs_bucket, tmp_path, monkeypatch):
    secret = tmp_path / "etc" / "secret"
    secret.parent.mkdir()
    secret.write_bytes(b"root:x:0:0")
    mount = tmp_path / "gcs"
    (mount / fake_gcs_bucket).mkdir(parents=True)
    monkeypatch.setenv(storage.FUSE_ROOT_ENV, str(mount))
    for uri in (f"gs://{fake_gcs_bucket}/{secret}", f"gs://{fake_gcs_bucket}/../../etc/secret"):
        with pytest.raises(storage.StorageError, match="not found"):
            storage.read_bytes(uri)   # read through the API, where no such object exists
    assert storage._fuse_file(f"gs://{fake_gcs_bucket}/{secret}") is None
    assert storage._fuse_path("..", "etc/secret") is None


def test_fuse_mapping_still_serves_files_inside_the_mount(tmp_path, monkeypatch):
    mount = tmp_path / "gcs"
    (mount / "b" / "d").mkdir(parents=True)
    (mount / "b" / "d" / "x.jpg").write_bytes(b"ok")
    monkeypatch.setenv(storage.FUSE_ROOT_ENV, str(mount))
    assert storage.read_bytes("gs://b/d/x.jpg") == b"ok"


# ---------------------------------------------------------------------------------------------------------
# 2. Endpoints come only from the environment


@pytest.mark.parametrize("key", ["vertex_endpoint", "logging_endpoint", "storage_endpoint"])
def test_a_preset_that_sets_an_endpoint_is_refused_in_one_line(tmp_path, key):
    preset = tmp_path / "evil.toml"
    preset.write_text(f'extends = "cloud"\n[cloud]\n{key} = "collector.example.com:443"\n')
    with pytest.raises(ConfigError) as err:
        load_preset(preset)
    message = str(err.value)
    assert "\n" not in message and f"cloud.{key}" in message and str(preset) in message
    assert {"vertex_endpoint": "PSA_VERTEX_ENDPOINT", "logging_endpoint": "PSA_LOGGING_ENDPOINT",
            "storage_endpoint": "STORAGE_EMULATOR_HOST"}[key] in message


def test_cli_refuses_a_preset_endpoint_with_exit_2_and_no_traceback(tmp_path):
    preset = tmp_path / "evil.toml"
    preset.write_text('extends = "cloud"\n[cloud]\nproject = "p"\nbucket = "b"\n'
                      'vertex_endpoint = "collector.example.com:443"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PSA_", "STORAGE_EMULATOR"))}
    result = subprocess.run([sys.executable, "-m", "cockpit", "--submit", str(preset), "--dry-run"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "cloud.vertex_endpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_clients_never_take_an_endpoint_from_the_config(monkeypatch):
    for name in ("PSA_VERTEX_ENDPOINT", "PSA_LOGGING_ENDPOINT", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    cfg = SimpleNamespace(cloud=SimpleNamespace(region="europe-west4", vertex_endpoint="127.0.0.1:1",
                                                logging_endpoint="127.0.0.1:2", storage_endpoint="x:3"))
    assert clients.vertex_endpoint(cfg) == clients.Endpoint("europe-west4-aiplatform.googleapis.com", False)
    assert clients.logging_endpoint(cfg) == clients.Endpoint("logging.googleapis.com", False)
    assert clients.storage_endpoint(cfg) is None


@pytest.mark.parametrize("address,loopback", [
    ("127.0.0.1:8080", True), ("localhost:1", True), ("[::1]:9", True), ("http://127.0.0.1:4443", True),
    ("collector.example.com:443", False), ("127.0.0.1.evil.example:443", False),
    ("http://127.0.0.1@evil.example:80", False), ("http://localhost@evil.example", False)])
def test_only_loopback_endpoints_get_an_insecure_channel(monkeypatch, address, loopback):
    monkeypatch.setenv("PSA_VERTEX_ENDPOINT", address)
    assert clients.vertex_endpoint().insecure is loopback


# ---------------------------------------------------------------------------------------------------------
# 3. Synthetic generation writes only into an empty folder or one it made


def _real_cards(folder: Path) -> dict[Path, bytes]:
    files = {folder / "splits.json": b'{"version": 1, "train": [], "val": [], "test": []}\n',
             folder / "img" / "c0001_front.jpg": b"my real scan", folder / "notes.txt": b"mine"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_generator_refuses_a_folder_it_did_not_make_and_touches_nothing(tmp_path):
    from core.synth import SynthError, generate

    files = _real_cards(tmp_path / "cards")
    with pytest.raises(SynthError, match="not made by the synthetic generator") as err:
        generate(tmp_path / "cards", 40, 0, size=(40, 56))
    assert "\n" not in str(err.value) and str(tmp_path / "cards") in str(err.value)
    assert {p: p.read_bytes() for p in files} == files
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "cards").rglob("*")) == sorted(
        p.relative_to(tmp_path) for p in [*files, tmp_path / "cards" / "img"])


def test_generator_writes_its_marker_and_may_regenerate_its_own_folder(tmp_path):
    from core.synth import generate
    from core.synth.dataset import MARKER_NAME

    generate(tmp_path / "syn", 40, 0, size=(40, 56))
    assert (tmp_path / "syn" / MARKER_NAME).is_file()
    generate(tmp_path / "syn", 50, 1, size=(40, 56))   # different settings: replaced, no complaint
    assert len(list((tmp_path / "syn" / "img").glob("*_front.jpg"))) == 50


def test_generator_adopts_a_set_it_made_before_the_marker_existed(tmp_path):
    from core.synth import generate
    from core.synth.dataset import MARKER_NAME

    generate(tmp_path / "syn", 40, 0, size=(40, 56))
    (tmp_path / "syn" / MARKER_NAME).unlink()          # as left by the generator before issue 12
    generate(tmp_path / "syn", 50, 1, size=(40, 56))
    assert (tmp_path / "syn" / MARKER_NAME).is_file()
    (tmp_path / "syn" / MARKER_NAME).unlink()
    (tmp_path / "syn" / "img" / "my_scan.jpg").write_bytes(b"not the generator's")
    from core.synth import SynthError

    with pytest.raises(SynthError):                    # anything else in it: refused as before
        generate(tmp_path / "syn", 40, 0, size=(40, 56))
    assert (tmp_path / "syn" / "img" / "my_scan.jpg").read_bytes() == b"not the generator's"


def test_train_with_a_typo_in_splits_exits_2_and_keeps_the_real_cards(tmp_path):
    files = _real_cards(tmp_path / "cards")
    result = subprocess.run(
        [sys.executable, "-m", "core.train", "--preset", "smoke",
         "--set", f"data.splits={tmp_path / 'cards' / 'split.json'}",   # splits.json, mistyped
         "--set", f"output.dir={tmp_path / 'out'}", "--set", f"data.cache_dir={tmp_path / 'cache'}"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "not made by the synthetic generator" in result.stderr.strip().splitlines()[-1]
    assert {p: p.read_bytes() for p in files} == files
    assert not (tmp_path / "cards" / "img" / "c0001_back.jpg").exists()


def test_synth_cli_refuses_a_foreign_folder_with_exit_2(tmp_path):
    files = _real_cards(tmp_path / "cards")
    result = subprocess.run([sys.executable, "-m", "core.synth", "--out", str(tmp_path / "cards"),
                             "--n", "40", "--size", "40x56"], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in files} == files


# ---------------------------------------------------------------------------------------------------------
# 4. Atomic rewrites keep the file's mode


def test_atomic_rewrite_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "preset.toml"
    path.write_text("a = 1\n")
    path.chmod(0o644)
    storage.write_text_atomic(path, "a = 2\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)
    storage.copy_to(path, path.with_suffix(".bak"))
    storage.write_bytes_atomic(path, b"a = 3\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "a = 3\n"


def test_atomic_write_of_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        storage.write_text_atomic(tmp_path / "new.toml", "x = 1\n")
        storage.copy_to(tmp_path / "new.toml", tmp_path / "copy.toml")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.toml").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "copy.toml").stat().st_mode) == 0o644


def test_a_preset_saved_by_the_cockpit_stays_world_readable(tmp_path):
    from cockpit.presets import PresetDocument

    path = tmp_path / "mine.toml"
    path.write_text('extends = "local"\n[training]\nbatch_size = 8\n')
    path.chmod(0o644)
    doc = PresetDocument.load(path)
    doc.set("training", "batch_size", 16)
    doc.save()
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044


# ---------------------------------------------------------------------------------------------------------
# 5. Budget guard: real record counts, a timeout the budget pays for


def _cloud_cfg(*overrides: str):
    return load_preset("cloud", ["cloud.project=proj", "cloud.bucket=gs://my-bucket", *overrides])


def test_estimate_counts_the_real_records_of_gs_splits(fake_gcs_bucket):
    import json

    from cockpit.catalog import load_catalog
    from cockpit.estimate import estimate

    doc = {"version": 1, "train": [{"id": f"c{i}"} for i in range(37)], "val": [{"id": "v"}] * 5, "test": []}
    _put(fake_gcs_bucket, "data/real/splits.json", json.dumps(doc).encode())
    cfg = _cloud_cfg(f"data.splits=gs://{fake_gcs_bucket}/data/real/splits.json", "data.synthetic_n=4000")
    est = estimate(cfg, load_catalog())
    assert (est.train_cards, est.val_cards) == (37, 5)


def test_estimate_refuses_when_gs_splits_cannot_be_counted(fake_gcs_bucket):
    from cockpit.catalog import load_catalog
    from cockpit.estimate import estimate

    cfg = _cloud_cfg(f"data.splits=gs://{fake_gcs_bucket}/data/none/splits.json")
    with pytest.raises(CockpitError, match="cannot estimate.*not found") as err:
        estimate(cfg, load_catalog())
    assert "\n" not in str(err.value)


def test_job_timeout_is_what_the_budget_buys_with_a_margin():
    from cockpit.catalog import load_catalog
    from cockpit.vertex import build_custom_job

    catalog = load_catalog()
    for spot in ("false", "true"):
        cfg = _cloud_cfg("cloud.max_cost_usd=5", f"cloud.spot={spot}", "cloud.timeout=7d")
        job = build_custom_job(cfg, "cloud", "img:t", [], "psa-x", catalog)
        c = cfg.cloud
        hourly = catalog.hourly_price(c.machine_type, c.accelerator_type, c.accelerator_count, c.region,
                                      spot=c.spot)
        hours = job.job_spec.scheduling.timeout.total_seconds() / 3600
        assert hours * hourly <= 5 * 0.95          # never longer than the budget buys, with a margin
        assert hours * hourly >= 5 * 0.8           # but not needlessly short


def test_job_timeout_without_a_budget_is_the_presets():
    from cockpit.vertex import build_custom_job

    job = build_custom_job(_cloud_cfg("cloud.timeout=12h"), "cloud", "img:t", [], "psa-x")
    assert job.job_spec.scheduling.timeout.total_seconds() == 12 * 3600


@pytest.mark.parametrize("value", ["inf", "1e20s", "nan", "1e400"])
def test_an_infinite_or_huge_timeout_is_a_one_line_error(tmp_path, value):
    preset = tmp_path / "t.toml"
    preset.write_text(f'extends = "cloud"\n[cloud]\ntimeout = "{value}"\n')
    with pytest.raises(ConfigError, match="cloud.timeout") as err:
        load_preset(preset)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------
# 6. No duplicate paid jobs; transient errors retried; Ctrl-C says where things stand


@pytest.fixture
def vertex_env(tmp_path, monkeypatch, fake_vertex):
    """No Google credentials; the fake Vertex/Logging services; retries shrunk to keep tests fast."""
    from cockpit import vertex

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    monkeypatch.setenv("PSA_STATE_POLL_S", "0.05")
    monkeypatch.setattr(vertex, "RETRY_INITIAL_S", 0.01, raising=False)  # raising=False: also on old code
    monkeypatch.setattr(vertex, "RETRY_MAX_S", 0.05, raising=False)
    monkeypatch.chdir(tmp_path)
    preset = tmp_path / "mytest.toml"
    preset.write_text('extends = "cloud"\n[training]\nphase1_epochs = 1\nphase2_epochs = 1\n'
                      '[cloud]\nproject = "test-project"\nbucket = "gs://test-bucket"\n')
    return fake_vertex, preset


def _backend_and_job(preset):
    from cockpit.vertex import VertexBackend, build_custom_job

    cfg = load_preset(preset)
    return VertexBackend(cfg), build_custom_job(cfg, "mytest", "img:t", [], "psa-mytest-x")


def test_a_create_whose_answer_was_lost_is_not_created_twice(vertex_env):
    import grpc

    fake, preset = vertex_env
    fake.create_errors_after_create = [grpc.StatusCode.UNAVAILABLE]
    backend, job = _backend_and_job(preset)
    info = backend.create(job)
    assert len(fake.jobs) == 1                                  # one paid job, not two
    assert info.resource_name == next(iter(fake.jobs.values())).name
    assert [kind for kind, _ in fake.requests].count("create") == 1


def test_a_create_that_never_reached_the_service_is_retried(vertex_env):
    import grpc

    fake, preset = vertex_env
    fake.create_errors_before_create = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED]
    backend, job = _backend_and_job(preset)
    info = backend.create(job)
    assert len(fake.jobs) == 1 and info.id in fake.jobs


def test_create_carries_a_deadline_and_a_request_id_label(vertex_env):
    from cockpit.vertex import CREATE_DEADLINE_S, REQUEST_LABEL

    fake, preset = vertex_env
    backend, job = _backend_and_job(preset)
    backend.create(job)
    (deadline,) = fake.create_deadlines
    # the server sees the client's deadline as time remaining; gRPC's timeout header rounds it up a little
    # (60.098 s was seen once), so allow a second over: what matters is a deadline near 60 s, not none
    assert deadline is not None and CREATE_DEADLINE_S - 30 < deadline <= CREATE_DEADLINE_S + 1
    assert len(fake.received[0].labels[REQUEST_LABEL]) >= 16


def test_following_rides_out_transient_get_errors(vertex_env):
    import grpc

    from cockpit.cli_cloud import follow_job

    fake, preset = vertex_env
    backend, job = _backend_and_job(preset)
    info = backend.create(job)
    fake.get_errors = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.UNAVAILABLE]
    assert follow_job(backend, info.id, state_poll_s=0.05) == 0
    assert fake.get_errors == []


def test_losing_contact_while_following_never_looks_like_a_failed_job(vertex_env, monkeypatch, capsys):
    import grpc

    from cockpit import vertex
    from cockpit.cli_cloud import follow_job
    from cockpit.errors import EXIT_FAILED, EXIT_MONITOR

    fake, preset = vertex_env
    monkeypatch.setattr(vertex, "RETRY_TIMEOUT_S", 0.3, raising=False)
    backend, job = _backend_and_job(preset)
    info = backend.create(job)
    fake.get_errors = [grpc.StatusCode.UNAVAILABLE] * 10_000
    code = follow_job(backend, info.id, state_poll_s=0.05)
    assert code == EXIT_MONITOR != EXIT_FAILED
    err = capsys.readouterr().err
    assert f"psa-cockpit logs {info.id} --follow" in err and "may still be running" in err


def _submit_in_child(tmp_path, preset, *extra: str) -> subprocess.Popen:
    # A shell starts background jobs with SIGINT ignored; a user's terminal has the default handler.
    driver = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "from cockpit.cli import main; "
              f"sys.exit(main(['--submit', {str(preset)!r}, '--tag', 't1', *{list(extra)!r}]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{ROOT / 'tests' / 'bin'}{os.pathsep}"
           f"{os.environ['PATH']}", "DOCKER_STUB_PIDFILE": str(tmp_path / "docker.pids")}
    return subprocess.Popen([sys.executable, "-c", driver], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(predicate, what: str, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_while_following_names_the_job_and_how_to_follow_or_cancel(vertex_env, tmp_path):
    import signal

    fake, preset = vertex_env
    fake.running_gets = 100_000
    proc = _submit_in_child(tmp_path, preset, "--no-build")
    for line in proc.stdout:
        if line.startswith("submitted job"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    (job_id,) = fake.jobs
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"psa-cockpit logs {job_id} --follow" in err and f"psa-cockpit cancel {job_id}" in err


def test_ctrl_c_while_creating_says_the_job_exists_with_its_id(vertex_env, tmp_path):
    import signal

    fake, preset = vertex_env
    fake.create_delay_s = 5.0
    proc = _submit_in_child(tmp_path, preset, "--no-build")
    _wait_for(lambda: fake.jobs, "the job to be created")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    (job_id,) = fake.jobs
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"job {job_id} was created" in err and f"psa-cockpit cancel {job_id}" in err


def test_ctrl_c_during_the_image_build_stops_docker_and_creates_no_job(vertex_env, tmp_path, monkeypatch):
    import signal

    fake, preset = vertex_env
    monkeypatch.setenv("DOCKER_STUB_MODE", "slow")
    monkeypatch.setenv("DOCKER_STUB_NO_MANIFEST", "1")
    proc = _submit_in_child(tmp_path, preset)
    for line in proc.stdout:
        if "downloading" in line:     # the stand-in docker is mid-build
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted while building and pushing the image; no job was created" in err
    assert fake.jobs == {}
    pids = [int(p) for p in (tmp_path / "docker.pids").read_text().split()]
    _wait_for(lambda: not any(_alive(p) for p in pids), "docker to stop", 20)


# ---------------------------------------------------------------------------------------------------------
# 7. Runs never share an output folder by accident


def test_two_submits_in_the_same_second_get_different_output_folders():
    from cockpit.vertex import build_custom_job

    cfg = _cloud_cfg()
    a, b = (build_custom_job(cfg, "cloud", "img:t", [], "psa-cloud-20250101-000000") for _ in range(2))
    dirs = {j.job_spec.base_output_directory.output_uri_prefix for j in (a, b)}
    assert len(dirs) == 2
    for job in (a, b):  # the trainer's run dir follows the job's folder
        args = list(job.job_spec.worker_pool_specs[0].container_spec.args)
        assert f"output.dir={job.job_spec.base_output_directory.output_uri_prefix.rstrip('/')}" in args


def _foreign_checkpoints(ckpt: Path) -> dict[str, bytes]:
    files = {"last.pth": b"another run", "checkpoint_epoch_9.pth": b"another run's epoch 9",
             "phase1_best.pth": b"another run's best"}
    ckpt.mkdir(parents=True)
    for name, data in files.items():
        (ckpt / name).write_bytes(data)
    return files


def test_a_fresh_local_run_moves_another_runs_checkpoints_aside(smoke_splits, tmp_path):
    from tests.trainer_runs import run_trainer

    out = tmp_path / "run"
    foreign = _foreign_checkpoints(out / "checkpoints")
    run = run_trainer(["--preset", "smoke", "--output-dir", str(out), "--set", f"data.splits={smoke_splits}",
                       "--set", "training.max_steps_per_epoch=2", "--set", "output.save_every=1",
                       "--set", "output.resume=none"], tmp_path / "logs")
    assert run.code == 0, run.stderr[-2000:]
    (aside,) = out.glob("checkpoints.previous-*")
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == foreign
    names = {p.name for p in (out / "checkpoints").iterdir()}
    assert "checkpoint_epoch_9.pth" not in names and "checkpoint_epoch_1.pth" in names
    from core import checkpoint

    assert checkpoint.load(str(out / "checkpoints" / "last.pth"))["run_id"]
    assert any("moved them to" in w["message"] for w in run.events("warning"))


def test_a_fresh_run_into_a_bucket_folder_of_another_run_is_refused(fake_gcs_bucket):
    from core import checkpoint

    storage.write_bytes_atomic(f"gs://{fake_gcs_bucket}/runs/a/checkpoints/last.pth", b"another run")
    with pytest.raises(checkpoint.CheckpointError, match="another run's checkpoints"):
        checkpoint.claim_for_new_run(f"gs://{fake_gcs_bucket}/runs/a/checkpoints", "mine")


def test_prune_never_deletes_another_runs_epoch_checkpoints(tmp_path):
    from core import checkpoint

    for n in range(1, 7):
        (tmp_path / f"checkpoint_epoch_{n}.pth").write_bytes(b"x")
    mine = {f"checkpoint_epoch_{n}.pth" for n in (4, 5, 6)}      # 1-3 belong to another run
    deleted = checkpoint.prune(str(tmp_path), keep_last=1, owned=mine)
    assert sorted(Path(p).name for p in deleted) == ["checkpoint_epoch_4.pth", "checkpoint_epoch_5.pth"]
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoint_epoch_1.pth", "checkpoint_epoch_2.pth",
                                                    "checkpoint_epoch_3.pth", "checkpoint_epoch_6.pth"}


def test_resume_never_falls_back_silently_to_another_runs_checkpoint(tmp_path):
    import torch

    from core import checkpoint

    torch.save({"global_step": 40, "run_id": "run-a"}, tmp_path / "checkpoint_epoch_4.pth")
    torch.save({"global_step": 90, "run_id": "run-b"}, tmp_path / "checkpoint_step_90.pth")
    (tmp_path / "last.pth").write_bytes(b"torn")
    with pytest.raises(checkpoint.CheckpointError, match="different runs"):
        checkpoint.find_resumable(str(tmp_path), warn=lambda m: None)


# ---------------------------------------------------------------------------------------------------------
# 12. One-line errors, exit 2, no traceback


def _module(tmp_path, module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    child_env = {**os.environ, "PSA_CACHE_DIR": str(tmp_path / "cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=child_env)


def _assert_one_line_exit_2(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _train(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return _module(tmp_path, "core.train", "--preset", "smoke", "--set", "training.max_steps_per_epoch=1",
                   *args, env=env)


@pytest.mark.parametrize("grade", ["NaN", "Infinity", "-Infinity"])
def test_train_with_a_non_finite_grade_is_one_line(tmp_path, grade):
    splits = tmp_path / "d" / "splits.json"
    splits.parent.mkdir()
    splits.write_text('{"version": 1, "train": [{"id": "c1", "front": "a.jpg", "back": "b.jpg", '
                      f'"grade": {grade}}}], "val": [], "test": []}}')
    result = _train(tmp_path, "--set", f"data.splits={splits}", "--set", "data.synthetic=false",
                    "--output-dir", str(tmp_path / "out"))
    _assert_one_line_exit_2(result, "grade")


def test_train_with_a_bad_model_weights_file_is_one_line(tmp_path, smoke_splits):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not a state dict")
    result = _train(tmp_path, "--set", f"data.splits={smoke_splits}", "--set", f"model.weights={weights}",
                    "--output-dir", str(tmp_path / "out"))
    _assert_one_line_exit_2(result, "model.weights", str(weights))


def test_train_with_a_non_utf8_preset_is_one_line(tmp_path):
    preset = tmp_path / "latin1.toml"
    preset.write_bytes('extends = "smoke"\ndescription = "café"\n'.encode("latin-1"))
    result = _module(tmp_path, "core.train", "--preset", str(preset))
    _assert_one_line_exit_2(result, str(preset), "UTF-8")


def test_cockpit_refuses_a_non_utf8_preset_in_one_line(tmp_path):
    from cockpit.presets import PresetDocument

    preset = tmp_path / "latin1.toml"
    preset.write_bytes('description = "café"\n'.encode("latin-1"))
    with pytest.raises(CockpitError, match="not UTF-8"):
        PresetDocument.load(preset)


@pytest.mark.parametrize("spec", ["{not json", '{"cluster": 3, "task": {}}'])
def test_train_with_a_bad_cluster_spec_is_one_line(tmp_path, spec):
    result = _train(tmp_path, "--output-dir", str(tmp_path / "out"), env={"CLUSTER_SPEC": spec})
    _assert_one_line_exit_2(result, "CLUSTER_SPEC")


def test_train_with_an_output_dir_that_is_a_file_is_one_line(tmp_path, smoke_splits):
    taken = tmp_path / "out"
    taken.write_text("a file, not a folder")
    result = _train(tmp_path, "--set", f"data.splits={smoke_splits}", "--output-dir", str(taken))
    _assert_one_line_exit_2(result, "output.dir", "not a folder")
    assert taken.read_text() == "a file, not a folder"


def test_a_huge_image_is_refused_before_decoding_and_named(tmp_path, monkeypatch):
    from PIL import Image

    from core import data

    path = tmp_path / "huge.png"
    Image.new("RGB", (300, 200)).save(path)
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(data.ImageError, match=r"huge.png \(record c7\): 300x200 pixels is over"):
        data.load_card_image(str(path), (48, 64), "c7")


def test_a_decompression_bomb_is_an_image_error_not_a_crash(tmp_path, monkeypatch):
    from PIL import Image

    from core import data

    path = tmp_path / "bomb.png"
    Image.new("RGB", (300, 200)).save(path)
    for limit in (20_000, 40_000):  # over 2x PIL's limit it raises, over 1x it only warned before
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(data.ImageError, match="bomb.png.*too large"):
            data.load_card_image(str(path), (48, 64), "c8")


@pytest.mark.parametrize("module", ["core.predict", "core.evaluate"])
def test_an_unreadable_export_is_one_line(tmp_path, module, smoke_splits):
    import json

    model = tmp_path / "model"
    model.mkdir()
    (model / "psa_dual_branch_config.json").write_text(json.dumps(
        {"model": {"backbone": "mobilenet_v3_small"}, "image_size": [48, 64]}))
    (model / "psa_dual_branch_state_dict.pth").write_bytes(b"\x80\x04garbage that is not a torch file")
    front = smoke_splits.parent / "img" / "c0001_front.jpg"
    args = (["--model", str(model), str(front), str(front)] if module == "core.predict"
            else ["--model", str(model), "--splits", str(smoke_splits)])
    _assert_one_line_exit_2(_module(tmp_path, module, *args), str(model))


@pytest.mark.slow
def test_a_phase1_best_of_another_architecture_is_one_line(tmp_path, smoke_splits):
    import torch

    from core.model import DualBranchGrader

    out = tmp_path / "out"
    common = ["--set", f"data.splits={smoke_splits}", "--output-dir", str(out), "--set", "output.resume=auto"]
    first = _train(tmp_path, *common, "--set", "training.phase2_epochs=0")
    assert first.returncode == 0, first.stderr[-2000:]
    other = DualBranchGrader("efficientnet_b0", "", 0.7, 0.0)
    torch.save({"model": other.state_dict(), "model_signature": {**other.config(), "image_size": [48, 64]},
                "phase": 1, "epoch": 1}, out / "checkpoints" / "phase1_best.pth")
    second = _train(tmp_path, *common, "--set", "training.phase2_epochs=1")
    _assert_one_line_exit_2(second, "phase1_best.pth", "different model config")


# ---------------------------------------------------------------------------------------------------------
# 11 and 13 (one-liners): torch version floor, .gitignore


def test_torch_requirement_excludes_versions_with_the_weights_only_bypass():
    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_req,) = [Requirement(d) for d in deps if Requirement(d).name == "torch"]
    assert not torch_req.specifier.contains(Version("2.5.1"))
    assert torch_req.specifier.contains(Version("2.6.0"))


def _cache_records(tmp_path, broken_at: int | None = None):
    from PIL import Image

    from core.records import CardRecord

    records = []
    for i in range(4):
        path = tmp_path / f"c{i}.png"
        if i == broken_at:
            path.write_bytes(b"not an image")
        else:
            Image.new("RGB", (40, 56), (i * 40, 0, 0)).save(path)
        records.append(CardRecord(f"c{i}", str(path), str(path), 9))
    return records


def test_a_failed_cache_build_leaves_no_temp_file(tmp_path):
    from core.data import ImageError, UInt8Cache

    cache = UInt8Cache(_cache_records(tmp_path, broken_at=2), (32, 48), ("front", "back"), str(tmp_path / "cache"))
    with pytest.raises(ImageError):
        cache.ensure()
    assert list((tmp_path / "cache").glob("*.tmp.npy")) == []
    assert not cache.path.exists()


def test_a_cache_build_removes_temp_files_of_killed_builds(tmp_path):
    from core.data import UInt8Cache

    cache = UInt8Cache(_cache_records(tmp_path), (32, 48), ("front", "back"), str(tmp_path / "cache"))
    cache.path.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = cache.path.with_suffix(f".{dead.pid}.tmp.npy")
    abandoned.write_bytes(b"half a cache")
    cache.ensure()
    assert not abandoned.exists() and cache.path.exists()


# ---------------------------------------------------------------------------------------------------------
# 10. Preset saves: a failure keeps the edits; a file changed on disk is noticed (the TUI's dialogs for
# these are in tests/test_tui_safety.py)


def test_a_failed_save_raises_one_line_naming_the_file_and_keeps_the_edits(tmp_path, monkeypatch):
    import errno

    from cockpit import presets as presets_service
    from cockpit.presets import PresetDocument

    path = tmp_path / "mine.toml"
    path.write_text('extends = "local"\n[training]\nbatch_size = 8\n')

    def disk_full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    doc = PresetDocument.load(path)
    doc.set("training", "batch_size", 16)
    monkeypatch.setattr(presets_service, "write_bytes_atomic", disk_full)
    with pytest.raises(CockpitError, match="mine.toml: not saved \\(No space left on device\\)"):
        doc.save()
    assert doc.dirty and doc.get("training", "batch_size") == 16
    assert "batch_size = 8" in path.read_text()


def test_a_save_notices_the_file_changed_on_disk_since_it_was_opened(tmp_path):
    from cockpit.presets import ChangedOnDisk, PresetDocument

    path = tmp_path / "mine.toml"
    path.write_text('extends = "local"\n[training]\nbatch_size = 8\n')
    doc = PresetDocument.load(path)
    doc.set("training", "batch_size", 16)
    path.write_text(path.read_text() + "# added by a teammate\n")
    with pytest.raises(ChangedOnDisk, match="changed on disk"):
        doc.save()
    assert path.read_text().endswith("# added by a teammate\n") and doc.dirty
    doc.save(overwrite_changes=True)                  # the user said "overwrite"
    assert "batch_size = 16" in path.read_text() and not doc.dirty
    doc.set("training", "batch_size", 32)
    doc.save()                                        # our own last write is not "a change on disk"
    assert "batch_size = 32" in path.read_text()


@pytest.mark.parametrize("path", ["models/psa.pth", ".env", "sub/.env"])
def test_gitignore_keeps_models_and_env_files_out(path):
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, timeout=30)
    assert result.returncode == 0, f"{path} is not ignored"
