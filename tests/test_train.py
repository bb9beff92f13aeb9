"""The trainer end to end on the smoke preset, and the pieces of its loop that are easy to get wrong."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import checkpoint
from core.early_stopping import EarlyStopping
from core.export import CONFIG_FILE, WEIGHTS_FILE, load_exported
from core.evaluate import predict_records
from core.records import load_splits
from core.sampling import sampler_prior_shift
from core.train import main
from core.train_args import build_parser, config_from_args

ROOT = Path(__file__).resolve().parent.parent


def metric_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def run_trainer(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["--log-format", "json", *args])
    out, err = capsys.readouterr()
    return code, metric_lines(out), err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke_splits):
    """One complete smoke run shared by the tests that only read its outputs."""
    out = tmp_path_factory.mktemp("smoke-run")
    env = {**os.environ, "PSA_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "psa-cache")}
    proc = subprocess.run([sys.executable, "-m", "core.train", "--preset", "smoke", "--output-dir", str(out),
                           "--set", f"data.splits={smoke_splits}"], capture_output=True, text=True, cwd=ROOT,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, metric_lines(proc.stdout)


def test_the_report_and_done_line_carry_per_criterion_accuracy(smoke_run):
    out, lines = smoke_run
    report = json.loads((out / "report.json").read_text())
    assert set(report["criteria"]) == {"centering", "corners", "edges", "surface"}
    assert all(c["n"] == report["n"] for c in report["criteria"].values())  # the synthetic set labels all
    assert lines[-1]["event"] == "done" and lines[-1]["criteria"] == report["criteria"]


def test_early_stopping_counts_only_improvements_past_min_delta():
    es = EarlyStopping("max", patience=2, min_delta=0.01)
    assert es.update(0.50, 1)
    assert not es.update(0.505, 2)  # within min_delta: not an improvement
    assert not es.should_stop
    assert not es.update(0.49, 3)
    assert es.should_stop and es.best == 0.50 and es.best_epoch == 1


def test_smoke_run_writes_every_output(smoke_run):
    out, _ = smoke_run
    ckpts = {p.name for p in (out / "checkpoints").iterdir()}
    assert {"phase1_best.pth", "phase2_best.pth", "last.pth"} <= ckpts
    assert any(n.startswith("checkpoint_epoch_") for n in ckpts)
    assert not [n for n in ckpts if n.endswith(".tmp")]
    assert (out / "model" / WEIGHTS_FILE).is_file() and (out / "model" / CONFIG_FILE).is_file()
    for name in ("training.log", "config.toml", "report.json"):
        assert (out / name).is_file(), name


def test_smoke_run_prints_the_metric_line_contract(smoke_run):
    _, lines = smoke_run
    events = [l["event"] for l in lines]
    assert events[0] in ("start", "info") and "start" in events and events[-1] == "done"
    epoch = next(l for l in lines if l["event"] == "epoch")
    for key in ("severity", "message", "phase", "epoch", "step", "train_loss", "val_loss", "val_qwk",
                "val_mae", "lr", "samples_per_s"):
        assert key in epoch, key
    done = lines[-1]
    assert done["export_path"].endswith("model") and len(done["confusion"]) == 10


@pytest.mark.slow
def test_a_short_run_beats_a_constant_predictor(tmp_path_factory, capsys):
    # A constant prediction has QWK 0: anything learned shows as a positive kappa. The smoke preset is
    # too small to learn; 400 cards and a few more epochs of resnet18 are enough.
    data = tmp_path_factory.mktemp("learn-data")
    code, lines, err = run_trainer(capsys, "--preset", "smoke", "--output-dir", str(tmp_path_factory.mktemp("learn")),
                                   "--set", f"data.splits={data}/splits.json", "--set", "data.synthetic_n=400",
                                   "--set", "model.backbone=resnet18", "--set", "training.precision=auto",
                                   "--set", "training.phase1_epochs=2", "--set", "training.phase2_epochs=6",
                                   "--set", "training.lr_phase1=1e-3", "--set", "training.lr_phase2=1e-3",
                                   "--set", "early_stopping.patience=20")
    assert code == 0, err
    best_val = max(l["val_qwk"] for l in lines if l["event"] == "epoch" and l["phase"] == 2)
    assert best_val > 0.2


def test_export_reload_gives_identical_predictions(smoke_run, smoke_splits):
    out, _ = smoke_run
    model, config = load_exported(str(out / "model"))
    best = checkpoint.load(str(out / "checkpoints" / "phase2_best.pth"))
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())
    records = load_splits(str(smoke_splits)).test
    first = predict_records(model, records, config["image_size"], config["sides"], reads=config["reads"])
    model2, _ = load_exported(str(out / "model"))
    assert (predict_records(model2, records, config["image_size"], config["sides"], reads=config["reads"]) == first).all()
    report = json.loads((out / "report.json").read_text())
    assert abs(report["accuracy"] - float((first == [r.grade for r in records]).mean())) < 1e-9


def test_the_exported_model_takes_back_the_samplers_prior_of_its_own_training_cards(smoke_run, smoke_splits):
    # The smoke preset trains with the grade-balanced sampler (power 0.5, from the local preset): the model
    # it exports carries what that draw did to the prior of its training cards, so core.predict and
    # core.serve read cards as validation did (core/grade_rule.py).
    out, _ = smoke_run
    model, _ = load_exported(str(out / "model"))
    train = load_splits(str(smoke_splits)).train
    grade, criteria = sampler_prior_shift([r.grade for r in train], [r.subgrades for r in train], 0.5)
    assert grade.abs().sum() > 0 and criteria.abs().sum() > 0
    assert torch.equal(model.grade_prior_shift, grade)
    assert torch.equal(model.criteria_prior_shift, criteria)


def test_early_stopping_stops_the_phase_and_restores_its_best_weights(tmp_path, smoke_splits, capsys):
    # lr 0 in phase 2: nothing can improve after epoch 1, so patience 1 stops at epoch 2.
    code, lines, _ = run_trainer(capsys, "--preset", "smoke", "--output-dir", str(tmp_path),
                                 "--set", f"data.splits={smoke_splits}", "--set", "training.phase2_epochs=4",
                                 "--set", "training.lr_phase2=0", "--set", "early_stopping.patience=1",
                                 "--set", "training.phase1_epochs=1")
    assert code == 0
    stops = [l for l in lines if l["event"] == "early_stop"]
    assert stops and stops[0]["phase"] == 2 and stops[0]["epoch"] == 2
    assert max(l["epoch"] for l in lines if l["event"] == "epoch" and l["phase"] == 2) == 2
    model, _ = load_exported(str(tmp_path / "model"))
    best = checkpoint.load(str(tmp_path / "checkpoints" / "phase2_best.pth"))
    assert best["epoch"] == 1
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())


def test_nan_loss_stops_with_exit_2_and_keeps_the_last_good_checkpoint(tmp_path, smoke_splits, capsys):
    code, lines, err = run_trainer(capsys, "--preset", "smoke", "--output-dir", str(tmp_path),
                                   "--set", f"data.splits={smoke_splits}", "--set", "training.lr_phase2=1e30",
                                   "--set", "training.max_grad_norm=0", "--set", "training.phase2_epochs=3")
    assert code == 2
    assert err.startswith("error: loss is nan") or err.startswith("error: loss is inf")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert lines[-1]["event"] == "error"
    state = checkpoint.load(str(tmp_path / "checkpoints" / "last.pth"))
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("args, message", [
    (["--set", "training.batchsize=4"], "unknown key 'training.batchsize' (did you mean 'batch_size'?)"),
    (["--set", "model.backbone=vgg"], "model.backbone = 'vgg' must be one of"),
    (["--set", "training.scheduler=step"], "training.scheduler = 'step' must be one of"),
    (["--preset", "nosuchpreset"], "preset 'nosuchpreset' not found"),
])
def test_bad_settings_exit_2_with_one_line(args, message, capsys):
    code = main(["--preset", "smoke", *args] if args[0] != "--preset" else args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def _splits_file(tmp_path, records, **splits):
    data = {"version": 1, "train": records, "val": records[:1], "test": records[:1], **splits}
    p = tmp_path / "splits.json"
    p.write_text(json.dumps(data))
    return p


def test_missing_images_are_counted_and_named(tmp_path, capsys):
    recs = [{"id": f"c{i}", "front": f"img/c{i}_f.jpg", "back": f"img/c{i}_b.jpg", "grade": 8} for i in range(5)]
    for r in recs:
        r_id = r["id"]
        recs_val = {**r, "id": r_id + "v"}
    p = _splits_file(tmp_path, recs, val=[recs_val], test=[{**recs[0], "id": "t0"}])
    code = main(["--preset", "smoke", "--set", f"data.splits={p}", "--set", "data.synthetic=false",
                 "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "14 missing images" in err and "c0_f.jpg" in err


def test_grade_out_of_range_is_rejected(tmp_path, capsys):
    recs = [{"id": "a", "front": "f.jpg", "back": "b.jpg", "grade": 11}]
    p = _splits_file(tmp_path, recs, val=[{**recs[0], "id": "v", "grade": 5}], test=[{**recs[0], "id": "t", "grade": 5}])
    code = main(["--preset", "smoke", "--set", f"data.splits={p}", "--set", "data.synthetic=false"])
    err = capsys.readouterr().err
    assert code == 2 and "grade 11 must be an integer 1..10" in err


def test_empty_split_is_rejected(tmp_path, capsys):
    rec = {"id": "a", "front": "f.jpg", "back": "b.jpg", "grade": 9}
    p = _splits_file(tmp_path, [rec], val=[], test=[{**rec, "id": "t"}])
    code = main(["--preset", "smoke", "--set", f"data.splits={p}", "--set", "data.synthetic=false"])
    assert code == 2 and "split 'val' is empty" in capsys.readouterr().err


def test_vertex_guide_argument_list_works_unchanged():
    argv = ["--splits_path", "gs://b/data/splits.json", "--output_dir", "/tmp/o", "--gcs_checkpoint_dir",
            "gs://b/ckpt", "--gcs_model_dir", "gs://b/model", "--batch_size", "32", "--phase1_epochs", "10",
            "--phase2_epochs", "30", "--lr_phase1", "1e-3", "--lr_phase2", "3e-4", "--lambda_fusion", "0.7",
            "--alpha_emd", "0.7", "--beta_edge", "0.05", "--beta_center", "0.1", "--use_sampler", "true"]
    cfg = config_from_args(build_parser().parse_args(argv))
    assert cfg.data.splits == "gs://b/data/splits.json" and cfg.output.checkpoint_dir == "gs://b/ckpt"
    assert cfg.output.model_dir == "gs://b/model" and cfg.training.phase1_epochs == 10
    assert cfg.training.lr_phase2 == 3e-4 and cfg.loss.beta_center == 0.1 and cfg.training.use_sampler


def test_transformer_guide_flags_map_to_preset_keys():
    argv = ["--config", "smoke", "--mode", "cloud", "--output-dir", "/tmp/x", "--epochs", "7",
            "--batch-size", "8", "--learning-rate", "5e-4", "--no-early-stopping", "--seed", "3"]
    cfg = config_from_args(build_parser().parse_args(argv))
    assert (cfg.training.phase2_epochs, cfg.training.batch_size, cfg.training.lr_phase2) == (7, 8, 5e-4)
    assert not cfg.early_stopping.enabled and cfg.training.seed == 3
    assert cfg.output.resume == "auto"  # cloud mode resumes by default


def test_set_wins_over_legacy_flags():
    cfg = config_from_args(build_parser().parse_args(
        ["--preset", "smoke", "--batch_size", "8", "--set", "training.batch_size=4"]))
    assert cfg.training.batch_size == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback is for machines without CUDA")
def test_fp16_without_cuda_trains_in_fp32_after_one_warning(tmp_path, smoke_splits, capsys):
    code, lines, err = run_trainer(capsys, "--preset", "smoke", "--fp16", "--set", f"data.splits={smoke_splits}",
                                   "--output-dir", str(tmp_path), "--set", "training.phase1_epochs=0",
                                   "--set", "training.phase2_epochs=1", "--set", "training.max_steps_per_epoch=1")
    assert code == 0, err
    (warning,) = [line for line in lines if line["event"] == "warning"]
    assert warning["severity"] == "WARNING"
    assert warning["message"] == ("training.precision = 'fp16' needs a CUDA GPU; this run has cpu only: "
                                  "training in fp32 instead")
    (start,) = [line for line in lines if line["event"] == "start"]
    assert start["precision"] == "fp32"


def test_a_generated_set_made_with_other_settings_is_regenerated(tmp_path, capsys):
    # Changing data.synthetic_n (or seed, or size) must not silently train on the old cards.
    splits = tmp_path / "data" / "splits.json"
    common = ["--preset", "smoke", "--output-dir", str(tmp_path / "o"), "--set", f"data.splits={splits}",
              "--set", "training.phase1_epochs=0", "--set", "training.phase2_epochs=1"]
    assert main(["--log-format", "json", *common, "--set", "data.synthetic_n=60"]) == 0
    assert len(load_splits(str(splits)).train) == 48
    capsys.readouterr()
    assert main(["--log-format", "json", *common, "--set", "data.synthetic_n=80"]) == 0
    info = [l["message"] for l in metric_lines(capsys.readouterr().out) if l["event"] == "info"]
    assert any("made with other settings: n 60 vs 80" in m for m in info)
    assert len(load_splits(str(splits)).train) == 64


def test_evaluate_cli_prints_the_report_and_writes_json(smoke_run, smoke_splits, capsys, tmp_path):
    from core.evaluate import main as evaluate_main

    out, _ = smoke_run
    report_path = tmp_path / "r.json"
    assert evaluate_main(["--model", str(out / "model"), "--splits", str(smoke_splits), "--output",
                          str(report_path)]) == 0
    printed = capsys.readouterr().out
    assert "QWK" in printed.upper() and "confusion" in printed.lower()
    report = json.loads(report_path.read_text())
    # Everything but the timing (measured again) and what names the input equals the training's report.
    assert report == {**json.loads((out / "report.json").read_text()), **{k: report[k] for k in
                                                                         ("split", "splits", "model", "inference")}}


def test_evaluate_from_a_checkpoint_matches_the_export(smoke_run, smoke_splits, capsys, tmp_path):
    from core.evaluate import evaluate

    out, _ = smoke_run
    from_export = evaluate(str(out / "model"), None, str(smoke_splits))
    from_ckpt = evaluate(None, str(out / "checkpoints" / "phase2_best.pth"), str(smoke_splits))
    assert from_export["confusion"] == from_ckpt["confusion"]


def test_predict_cli_prints_grade_distribution_edge_and_centering(smoke_run, smoke_splits, capsys):
    from core.predict import main as predict_main

    out, _ = smoke_run
    rec = load_splits(str(smoke_splits)).test[0]
    assert predict_main(["--model", str(out / "model"), rec.front, rec.back, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 1 <= result["grade"] <= 10
    assert len(result["probabilities"]) == 10 and abs(sum(result["probabilities"]) - 1.0) < 1e-3
    assert 0 <= result["edge"] <= 1 and len(result["centering"]["front"]) == 2


def test_predict_on_a_missing_model_is_one_line_exit_2(tmp_path, capsys):
    from core.predict import main as predict_main

    assert predict_main(["--model", str(tmp_path / "none"), "a.jpg", "b.jpg"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
