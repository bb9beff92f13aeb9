"""Reading a card more than once (`model.reads`, core/reads.py): the scans moved by a pixel between reads,
the grade read from the mean of the reads' distributions, alike in evaluation, prediction and serving."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import CardDataset, crops_of, load_card_crops, load_card_image, model_inputs, shifted
from core.export import export_model, load_exported
from core.grade_rule import criteria_logits, grade_logits, grade_probabilities
from core.inference import predict_card, predict_cards, preprocess
from core.model import DualBranchGrader
from core.reads import MAX_READS, READ_SHIFTS, ReadsError, pooled_reading, read_shifts, reads_of, split_reads
from core.records import CardRecord


def _export_crop_model(model_dir, reads: int | None = None) -> str:
    """A random (seeded) model that reads crops, the detail map and measures centering, like the local preset."""
    torch.manual_seed(0)
    model = DualBranchGrader(backbone="resnet18", criteria=True, crop_size=16, crop_fraction=0.3, detail=True,
                             detail_kind="lines_creases", measure_centering=True)
    export_model(model, str(model_dir), {"image_size": [48, 64], "sides": ["front", "back"],
                                         **({"reads": reads} if reads is not None else {})})
    return str(model_dir)


def _by_hand(model, config, front, back, shifts) -> torch.Tensor:
    """[10] the mean grade distribution of single reads of the scans moved by each shift, built here from
    the data module's pieces, not through core.inference."""
    size, crops = tuple(config["image_size"]), (0.3, 16, 1)
    probs = []
    for shift in shifts:
        batch = {}
        for side, path in (("front", front), ("back", back)):
            batch[side] = torch.from_numpy(load_card_image(path, size, detail="lines_creases", shift=shift)
                                           ).permute(2, 0, 1)[None]
            batch[f"{side}_crops"] = torch.from_numpy(load_card_crops(path, *crops, shift=shift)
                                                      ).permute(0, 3, 1, 2)[None]
        with torch.no_grad():
            out = model(**model_inputs(batch, ["front", "back"], torch.device("cpu"), False))
        probs.append(grade_probabilities(grade_logits(out), criteria_logits(out))[0])
    return torch.stack(probs).mean(0)


def test_a_shift_moves_the_scan_by_whole_pixels_and_repeats_its_edge():
    a = np.zeros((6, 5, 3), dtype=np.uint8)
    a[2, 3] = 200               # a bright pixel at x 3, y 2
    a[:, 0] = 50                # the left column
    im = Image.fromarray(a)
    assert shifted(im, (0, 0)) is im
    right_down = np.asarray(shifted(im, (1, 1)))
    assert right_down[3, 4].tolist() == [200] * 3 and right_down[2, 3].tolist() == [0] * 3
    assert (right_down[1:, :2] == 50).all()     # the left column repeated into the gap on the left
    left_up = np.asarray(shifted(im, (-1, -1)))
    assert left_up[1, 2].tolist() == [200] * 3 and left_up.shape == a.shape
    assert (left_up[:, -1] == left_up[:, -2]).all()  # the right column repeated into the gap on the right


def test_read_shifts_start_with_the_scan_as_it_is_and_refuse_out_of_range_counts():
    assert read_shifts(1) == ((0, 0),)
    assert len(set(READ_SHIFTS)) == MAX_READS == len(read_shifts(MAX_READS))
    assert all(max(abs(dx), abs(dy)) == 1 for dx, dy in READ_SHIFTS[1:])
    for bad in (0, MAX_READS + 1, True, "3", 2.0):
        with pytest.raises(ReadsError, match=r"^--reads = .*: expected a whole number from 1 to 9$"):
            read_shifts(bad, "--reads")
    assert reads_of({}) == 1                      # exported before reads existed: read once
    assert reads_of({"reads": 5}) == 5 and reads_of({"reads": 5}, 2) == 2
    with pytest.raises(ReadsError, match="reads in the model's config = 0"):
        reads_of({"reads": 0})


def test_the_config_key_takes_the_same_range(tmp_path):
    from core.config import ConfigError, load_preset

    assert load_preset("local").model.reads == 5
    for bad in ("0", "10"):
        with pytest.raises(ConfigError, match="model.reads"):
            load_preset("smoke", [f"model.reads={bad}"])


def test_a_moved_dataset_reads_the_files_as_the_loaders_moved_by_hand(card_scans):
    front, back = card_scans[0]
    records = [CardRecord(id="c0", front=front, back=back, grade=5)]
    base = CardDataset(records, (48, 64), ("front", "back"), crops=(0.3, 16), detail="lines")
    assert base.with_shift((0, 0)) is base
    moved = base.with_shift((1, -1))[0]
    assert torch.equal(moved["front"], torch.from_numpy(load_card_image(front, (48, 64), detail="lines",
                                                                        shift=(1, -1))).permute(2, 0, 1))
    with Image.open(back) as im:
        want = crops_of(shifted(im.convert("RGB"), (1, -1)), 0.3, 16)
    assert torch.equal(moved["back_crops"], torch.from_numpy(want).permute(0, 3, 1, 2))
    assert not torch.equal(moved["front"], base[0]["front"])


def test_prediction_grades_the_mean_of_the_moved_reads(tmp_path, card_scans):
    model, config = load_exported(_export_crop_model(tmp_path / "m", reads=3))
    front, back = card_scans[0]
    inputs = preprocess(config, {"front": front, "back": back})
    assert inputs["front"].shape[0] == 3 and inputs["back_crops"].shape[:2] == (3, 4 + 4)
    got = predict_card(model, config, front, back)
    want = _by_hand(model, config, front, back, read_shifts(3))
    assert got["probabilities"] == pytest.approx(want.tolist(), abs=2e-4)
    assert got["expected_grade"] == pytest.approx(float((want * torch.arange(1, 11)).sum()), abs=1e-4)
    once = predict_card(model, {**config, "reads": 1}, front, back)
    assert once["probabilities"] == pytest.approx(_by_hand(model, config, front, back, [(0, 0)]).tolist(), abs=2e-4)
    assert once["probabilities"] != got["probabilities"]


def test_a_batch_of_cards_pools_each_cards_own_reads(tmp_path, card_scans):
    model, config = load_exported(_export_crop_model(tmp_path / "m", reads=2))
    together = predict_cards(model, config, [{"front": f, "back": b} for f, b in card_scans])
    alone = [predict_card(model, config, f, b) for f, b in card_scans]
    for got, want in zip(together, alone):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=2e-4)
        assert got["subgrades"] == want["subgrades"]
    assert together[0]["probabilities"] != together[1]["probabilities"]


def test_evaluation_and_prediction_read_alike(tmp_path, card_scans):
    from core.evaluate import predict_records

    model, config = load_exported(_export_crop_model(tmp_path / "m", reads=4))
    records = [CardRecord(id=f"c{i}", front=f, back=b, grade=5) for i, (f, b) in enumerate(card_scans)]
    evaluated = predict_records(model, records, config["image_size"], ("front", "back"), reads=4).tolist()
    predicted = [r["grade"] for r in predict_cards(model, config, [{"front": f, "back": b} for f, b in card_scans])]
    assert evaluated == predicted


def test_pooling_one_read_is_that_read_and_several_their_mean():
    torch.manual_seed(0)
    outs = [{"logits": torch.randn(3, 10), "criteria": torch.randn(3, 4, 10), "edge": torch.rand(3),
             "centering": torch.rand(3, 8)[:, :4], "grade_prior_shift": torch.zeros(10)} for _ in range(2)]
    one = pooled_reading(outs[:1])
    assert torch.equal(one["grade"], grade_probabilities(outs[0]["logits"], outs[0]["criteria"]))
    two = pooled_reading(outs)
    assert torch.allclose(two["grade"], (one["grade"] + pooled_reading(outs[1:])["grade"]) / 2)
    assert torch.allclose(two["criteria"].sum(-1), torch.ones(3, 4))
    # One forward pass over cards' reads, card-major, splits back into one outputs dict per read.
    merged = {k: torch.stack([o[k] for o in outs], 1).flatten(0, 1) if k != "grade_prior_shift" else o[k]
              for o in outs[:1] for k in o}
    parts = split_reads(merged, 2)
    assert all(torch.equal(p[k], o[k]) for p, o in zip(parts, outs) for k in o)


def test_the_trainer_reads_its_test_cards_as_configured_and_the_export_carries_it(tmp_path, smoke_splits, capsys):
    from core.evaluate import evaluate
    from core.train import main

    out = tmp_path / "run"
    code = main(["--preset", "smoke", "--output-dir", str(out), "--set", f"data.splits={smoke_splits}",
                 "--set", "model.reads=3", "--set", "training.phase2_epochs=1", "--set", "training.phase1_epochs=0",
                 "--log-format", "json"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["reads"] == 3 and report["inference"]["reads"] == 3
    assert json.loads((out / "model" / "psa_dual_branch_config.json").read_text())["reads"] == 3
    again = evaluate(str(out / "model"), None, str(smoke_splits))  # reads 3, from the export
    assert again["confusion"] == report["confusion"] and again["reads"] == 3
    once = evaluate(str(out / "model"), None, str(smoke_splits), reads=1)
    assert once["reads"] == 1
    for name in ("last.pth", "phase2_best.pth"):  # a checkpoint reads as the export does
        from_ckpt = evaluate(None, str(out / "checkpoints" / name), str(smoke_splits))
        assert from_ckpt["reads"] == 3 and from_ckpt["confusion"] == report["confusion"]


@pytest.mark.parametrize("module", ["core.evaluate", "core.predict"])
def test_a_bad_reads_flag_is_one_line_and_exit_2(module, tiny_model_dir, card_scans, smoke_splits, capsys):
    import importlib

    main = importlib.import_module(module).main
    args = (["--model", tiny_model_dir, "--splits", str(smoke_splits)] if module == "core.evaluate"
            else ["--model", tiny_model_dir, *card_scans[0]])
    assert main([*args, "--reads", "12"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --reads = 12: expected a whole number from 1 to 9\n"


def test_predict_reads_as_asked(tmp_path, card_scans, capsys):
    from core.predict import main

    model_dir = _export_crop_model(tmp_path / "m", reads=3)
    results = []
    for flag in ([], ["--reads", "1"]):
        assert main(["--model", model_dir, *card_scans[0], "--json", *flag]) == 0
        results.append(json.loads(capsys.readouterr().out))
    model, config = load_exported(model_dir)
    assert results[0]["probabilities"] == predict_card(model, config, *card_scans[0])["probabilities"]
    assert results[1]["probabilities"] == predict_card(model, {**config, "reads": 1}, *card_scans[0])["probabilities"]
    assert results[0]["probabilities"] != results[1]["probabilities"]


def test_the_timing_passes_each_card_read_as_often_as_it_is_graded(tmp_path, card_scans):
    from core import latency
    from core.metrics import format_report

    model, config = load_exported(_export_crop_model(tmp_path / "m", reads=3))
    cards = {k: torch.cat([preprocess({**config, "reads": 1}, {"front": f, "back": b})[k] for f, b in card_scans])
             for k in ("front", "front_crops", "back", "back_crops")}
    rows = []
    model.register_forward_pre_hook(lambda m, args, kwargs: rows.append(len(kwargs["front"])), with_kwargs=True)
    timing = latency.measure(model, cards, batch_size=8, reads=3)
    assert set(rows) == {3, 6}    # batch 1: one card's 3 reads; throughput: 8 // 3 = 2 cards' reads
    assert timing["reads"] == 3 and timing["cards_per_s"] > 0
    text = format_report({"n": 2, "qwk": 0.5, "mae": 1.0, "accuracy": 0.5, "within_one": 1.0, "macro_f1": 0.5,
                          "weighted_f1": 0.5, "inference": timing, "per_grade_accuracy": {},
                          "confusion": [[0] * 10] * 10, "reads": 3}).splitlines()
    assert text[0].endswith("within one 100.0%, each card read 3 times")
    assert text[2].startswith("inference on ") and text[2].endswith("at batch 8, each card read 3 times")


def test_a_served_grade_is_the_grade_predict_prints_with_the_same_reads(tmp_path, card_scans):
    from core.serve import Grader, create_app, start_background
    from tests.test_serve import _instance, _post

    model, config = load_exported(_export_crop_model(tmp_path / "m", reads=3))
    grader = Grader(model, config, decode_threads=1)
    url, stop = start_background(create_app(grader))
    try:
        status, reply = _post(url, {"instances": [_instance(*card_scans[0]), _instance(*card_scans[1])]})
    finally:
        stop()
        grader.close()
    assert status == 200
    for got, (front, back) in zip(reply["predictions"], card_scans):
        want = predict_card(model, config, front, back)
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=2e-4)
        assert (got["grade"], got["subgrades"]) == (want["grade"], want["subgrades"])


def test_serve_refuses_a_bad_reads_flag_in_one_line(tiny_model_dir, capsys):
    from core.serve import main

    assert main(["--model", tiny_model_dir, "--reads", "0"]) == 2
    assert capsys.readouterr().err == "error: --reads = 0: expected a whole number from 1 to 9\n"
