"""The trainer with its data and outputs on gs://, against a real fake-gcs-server on 127.0.0.1.

Splits, images, checkpoints, the export and the run dir all live in the emulator's bucket; a run
preempted there resumes from there and ends exactly where an uninterrupted local run does.
"""
import io
import uuid
from pathlib import Path

import pytest
import torch

from core import storage
from core.export import CONFIG_FILE, WEIGHTS_FILE, load_exported
from core.preemption import EXIT_PREEMPTED
from core.train import main
from tests.trainer_runs import assert_tensors_equal, load_weights, metric_lines, run_trainer


def fast_args(*extra: str) -> list[str]:
    """The smoke preset cut to 2 steps per epoch (1 + 2 epochs), deterministic, a step line per step."""
    return ["--preset", "smoke", "--set", "training.deterministic=true", "--set", "training.log_every_steps=1",
            "--set", "training.max_steps_per_epoch=2", "--set", "model.dropout=0.2", *extra]


def object_names(bucket: str, prefix: str = "") -> list[str]:
    """Every object, hidden temporaries included (core.storage.list_dir would hide those)."""
    return sorted(b.name for b in storage._client().list_blobs(bucket, prefix=prefix))


@pytest.fixture(autouse=True)
def _no_fuse_mount(monkeypatch, tmp_path):
    """Reads go through the API (never a /gcs mount of this machine) into a per-test download cache."""
    monkeypatch.setenv("PSA_GCS_FUSE_ROOT", "")
    monkeypatch.setenv("PSA_GCS_CACHE_DIR", str(tmp_path / "gcs-cache"))


@pytest.fixture(autouse=True)
def _one_thread():
    """In-process runs use one intra-op thread, like the subprocesses (see tests/trainer_runs.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def gcs_data(fake_gcs_bucket, smoke_splits):
    """The smoke card set uploaded to gs://BUCKET/data/ (splits.json keeps its relative image paths)."""
    root = Path(smoke_splits).parent
    bucket = storage._client().bucket(fake_gcs_bucket)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            bucket.blob(f"data/{path.relative_to(root).as_posix()}").upload_from_filename(str(path))
    return fake_gcs_bucket


def corrupt(bucket: str, key: str) -> str:
    """Replace an image with a JPEG header and nothing after it (a torn upload of a scan)."""
    storage._client().bucket(bucket).blob(key).upload_from_string(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    return f"gs://{bucket}/{key}"


def run_in_process(capsys, *args: str) -> tuple[int, list[dict], str]:
    code = main(["--log-format", "json", *args])
    out, err = capsys.readouterr()
    return code, metric_lines(out), err


@pytest.mark.slow
def test_smoke_trains_with_every_path_on_gcs_and_resumes_there_exactly(gcs_data, smoke_splits, tmp_path):
    gs = f"gs://{gcs_data}"
    args = fast_args("--set", f"data.splits={gs}/data/splits.json", "--output-dir", f"{gs}/run",
                     "--gcs_checkpoint_dir", f"{gs}/ckpt", "--gcs_model_dir", f"{gs}/model", "--resume", "auto")
    first = run_trainer(args, tmp_path / "logs", signal_at_step=3)  # phase 2, mid-epoch
    assert first.code == EXIT_PREEMPTED, first.stderr[-2000:]
    (preempted,) = first.events("preempted")
    assert preempted["message"].startswith(f"signal received: saved {gs}/ckpt/last.pth")
    assert storage.exists(f"{gs}/ckpt/last.pth")

    resumed = run_trainer(args, tmp_path / "logs")
    assert resumed.code == 0, resumed.stderr[-2000:]
    (info,) = [i for i in resumed.events("info") if "resumed_from" in i]
    assert info["resumed_from"] == f"{gs}/ckpt/last.pth" and info["global_step"] == preempted["step"]
    assert resumed.done["export_path"] == f"{gs}/model"

    names = object_names(gcs_data)
    for expected in ("ckpt/last.pth", "ckpt/phase1_best.pth", "ckpt/phase2_best.pth", "ckpt/checkpoint_epoch_3.pth",
                     f"model/{WEIGHTS_FILE}", f"model/{CONFIG_FILE}", "run/training.log", "run/config.toml",
                     "run/report.json"):
        assert expected in names, expected
    assert not [n for n in names if n.endswith(".tmp")]  # no temporary object left behind
    log = storage.read_text(f"{gs}/run/training.log")  # both attempts' lines, in order
    assert log.index('"event":"preempted"') < log.index('"message":"resuming from')
    model, config = load_exported(f"{gs}/model")
    assert config["sides"] == ["front", "back"]

    # The same training, uninterrupted and all local: the same weights and test metrics, bitwise.
    local = run_trainer(fast_args("--set", f"data.splits={smoke_splits}", "--output-dir", str(tmp_path / "local")),
                        tmp_path / "logs")
    assert local.code == 0, local.stderr[-2000:]
    exported = torch.load(io.BytesIO(storage.read_bytes(f"{gs}/model/{WEIGHTS_FILE}")), weights_only=True)
    assert_tensors_equal(load_weights(tmp_path / "local" / "model" / WEIGHTS_FILE), exported, "export")
    for key in ("test_qwk", "test_mae", "test_acc", "confusion"):
        assert resumed.done[key] == local.done[key], key


def test_aip_dirs_receive_checkpoints_and_export_when_the_preset_leaves_them_empty(
        fake_gcs_bucket, smoke_splits, tmp_path, monkeypatch, capsys):
    gs = f"gs://{fake_gcs_bucket}/job"
    monkeypatch.setenv("AIP_CHECKPOINT_DIR", f"{gs}/checkpoints/")  # Vertex AI's trailing slash
    monkeypatch.setenv("AIP_MODEL_DIR", f"{gs}/model/")
    code, lines, err = run_in_process(capsys, *fast_args(
        "--set", f"data.splits={smoke_splits}", "--output-dir", str(tmp_path), "--set", "training.phase1_epochs=0",
        "--set", "training.phase2_epochs=1"))
    assert code == 0, err
    start = next(line for line in lines if line["event"] == "start")
    assert (start["checkpoint_dir"], start["model_dir"]) == (f"{gs}/checkpoints", f"{gs}/model")
    names = object_names(fake_gcs_bucket)
    assert {"job/checkpoints/last.pth", "job/checkpoints/phase2_best.pth", f"job/model/{WEIGHTS_FILE}",
            f"job/model/{CONFIG_FILE}"} <= set(names)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "model").exists()
    assert (tmp_path / "training.log").is_file()  # the run dir itself stays where --output-dir says


def test_missing_data_bucket_exits_2_with_one_line(fake_gcs, tmp_path, capsys):
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    code, lines, err = run_in_process(capsys, *fast_args("--set", f"data.splits=gs://{bucket}/data/splits.json",
                                                         "--output-dir", str(tmp_path)))
    assert code == 2
    assert err == f"error: gs://{bucket}: bucket not found\n"


def test_missing_checkpoint_bucket_fails_at_start_up_not_after_an_epoch(fake_gcs, smoke_splits, tmp_path, capsys):
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    code, lines, err = run_in_process(capsys, *fast_args("--set", f"data.splits={smoke_splits}",
                                                         "--output-dir", str(tmp_path),
                                                         "--gcs_checkpoint_dir", f"gs://{bucket}/ckpt"))
    assert code == 2
    assert err == f"error: gs://{bucket}/ckpt: bucket gs://{bucket} not found (the checkpoint dir)\n"
    assert not [line for line in lines if line["event"] in ("start", "step")]
    assert lines[-1]["event"] == "error"


def test_corrupt_jpeg_fails_while_building_the_cache_naming_file_and_record(gcs_data, tmp_path, capsys):
    bad = corrupt(gcs_data, "data/img/c0001_back.jpg")  # c0001 is a training card
    code, lines, err = run_in_process(capsys, *fast_args("--set", f"data.splits=gs://{gcs_data}/data/splits.json",
                                                         "--output-dir", str(tmp_path)))
    assert code == 2
    assert err.startswith(f"error: {bad} (record c0001): cannot decode image") and err.count("\n") == 1
    assert not [line for line in lines if line["event"] == "step"]  # the cache is built before training


def test_corrupt_jpeg_read_in_a_loader_worker_is_still_one_line(gcs_data, tmp_path, capsys):
    # No cache: the image is decoded by a DataLoader worker while phase 1 is evaluated (c0018 is a
    # validation card), and torch re-raises it with the worker's traceback in the message.
    bad = corrupt(gcs_data, "data/img/c0018_back.jpg")
    code, lines, err = run_in_process(capsys, *fast_args(
        "--set", f"data.splits=gs://{gcs_data}/data/splits.json", "--output-dir", str(tmp_path),
        "--set", "data.cache=false", "--set", "data.num_workers=1", "--set", "training.max_steps_per_epoch=1"))
    assert code == 2
    assert err.startswith(f"error: {bad} (record c0018): cannot decode image") and err.count("\n") == 1
    assert lines[-1]["event"] == "error" and "\n" not in lines[-1]["message"]
