"""core.evaluate and core.predict as the guides use them: --splits_path, a gs:// checkpoint or model whose
report lands beside it in the bucket (fake-gcs-server), accuracy and F1 as scikit-learn computes them,
the inference time with its device, and core.predict's own time."""
from __future__ import annotations

import json
import os

import pytest
from sklearn.metrics import accuracy_score, f1_score

from core import checkpoint, storage
from core.config import load_preset
from core.evaluate import EVAL_BATCH_SIZE, main as evaluate_main, predict_records
from core.export import load_exported
from core.predict import main as predict_main
from core.records import load_splits

INFERENCE_KEYS = {"device", "batch1_median_ms", "batch1_p95_ms", "cards_per_s", "batch_size"}


@pytest.fixture
def gs_run(fake_gcs_bucket, tiny_model_dir):
    """A job's outputs in a bucket: the export under model/ and phase2_best.pth under checkpoints/."""
    run = f"gs://{fake_gcs_bucket}/psa-runs/job"
    for name in os.listdir(tiny_model_dir):
        storage.copy_to(os.path.join(tiny_model_dir, name), f"{run}/model/{name}")
    model, config = load_exported(str(tiny_model_dir))
    checkpoint.save({"model": model.state_dict(), "model_signature": {**model.config(),
                                                                       "image_size": config["image_size"]},
                     "phase": 2, "epoch": 1}, f"{run}/checkpoints/phase2_best.pth")
    return run


def _no_local_gs_folder(cwd) -> bool:
    return not any(p.name.startswith("gs:") for p in cwd.rglob("*"))


def test_gs_checkpoint_with_splits_path_writes_the_report_beside_it_in_the_bucket(
        gs_run, smoke_splits, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert evaluate_main(["--checkpoint", f"{gs_run}/checkpoints/phase2_best.pth",
                          "--splits_path", str(smoke_splits), "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"report written to {gs_run}/checkpoints/report_test.json")
    report = json.loads(storage.read_text(f"{gs_run}/checkpoints/report_test.json"))
    assert report["n"] == len(load_splits(str(smoke_splits)).test)
    assert _no_local_gs_folder(tmp_path)


def test_gs_model_writes_beside_it_and_output_goes_where_it_says(gs_run, smoke_splits, tmp_path, monkeypatch,
                                                                capsys):
    monkeypatch.chdir(tmp_path)
    assert evaluate_main(["--model", f"{gs_run}/model", "--splits", str(smoke_splits), "--batch-size", "16"]) == 0
    assert storage.exists(f"{gs_run}/model/report_test.json")
    assert evaluate_main(["--model", f"{gs_run}/model", "--splits", str(smoke_splits), "--split", "val",
                          "--batch-size", "16", "--output", f"{gs_run}/reports/val.json"]) == 0
    assert json.loads(storage.read_text(f"{gs_run}/reports/val.json"))["split"] == "val"
    assert _no_local_gs_folder(tmp_path)


def test_report_adds_accuracy_and_f1_as_sklearn_computes_them_and_the_inference_time(
        tiny_model_dir, smoke_splits, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert evaluate_main(["--model", str(tiny_model_dir), "--splits", str(smoke_splits), "--output", str(out),
                          "--batch-size", "16"]) == 0
    printed = capsys.readouterr().out.splitlines()
    report = json.loads(out.read_text())
    model, config = load_exported(str(tiny_model_dir))
    records = load_splits(str(smoke_splits)).test
    y_pred = predict_records(model, records, config["image_size"], config["sides"])
    y_true = [r.grade for r in records]
    assert report["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert report["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0))
    timing = report["inference"]
    assert INFERENCE_KEYS <= set(timing) and timing["batch_size"] == 16
    assert "cpu" in timing["device"] and timing["batch1_p95_ms"] >= timing["batch1_median_ms"] > 0
    assert timing["cards_per_s"] > 0
    assert any(line.startswith("accuracy ") and "macro F1" in line and "weighted F1" in line for line in printed)
    assert any(line.startswith(f"inference on {timing['device']}: ") for line in printed)


def test_the_eval_batch_size_setting_defaults_to_the_guides_128():
    from core.evaluate import evaluate

    assert EVAL_BATCH_SIZE == 128 and evaluate.__defaults__[1] == 128
    assert load_preset("local").training.eval_batch_size == 128
    assert load_preset("local", ["training.eval_batch_size=64"]).training.eval_batch_size == 64


def test_predict_prints_its_own_time_and_device(tiny_model_dir, card_scans, capsys):
    front, back = card_scans[0]
    assert predict_main(["--model", str(tiny_model_dir), front, back]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("time: ") and " ms to grade this card (decode, resize, model) on " in last
    assert "(cpu, " in last and "model loaded in " in last
    assert predict_main(["--model", str(tiny_model_dir), front, back, "--json"]) == 0
    timing = json.loads(capsys.readouterr().out)["timing"]
    assert timing["grade_ms"] > 0 and timing["load_s"] > 0 and "cpu" in timing["device"]
