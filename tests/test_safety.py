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
# 11 and 13 (one-liners): torch version floor, .gitignore


def test_torch_requirement_excludes_versions_with_the_weights_only_bypass():
    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_req,) = [Requirement(d) for d in deps if Requirement(d).name == "torch"]
    assert not torch_req.specifier.contains(Version("2.5.1"))
    assert torch_req.specifier.contains(Version("2.6.0"))


@pytest.mark.parametrize("path", ["models/psa.pth", ".env", "sub/.env"])
def test_gitignore_keeps_models_and_env_files_out(path):
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, timeout=30)
    assert result.returncode == 0, f"{path} is not ignored"
