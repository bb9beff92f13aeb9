"""Multi-scale input: 8 native-resolution crops per scan (4 corners, 4 edge midpoints) beside the
whole-card view, cut before the resize, cached, augmented without moving the print, and read the same
way by training, evaluation and prediction."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.augment import AugmentSeed
from core.data import CardDataset, UInt8Cache, crops_of, load_card_crops, model_inputs
from core.model import CropEncoder, DualBranchGrader
from core.records import load_splits

ROOT = Path(__file__).resolve().parent.parent


def _marked(w: int = 100, h: int = 140) -> np.ndarray:
    img = np.full((h, w, 3), 128, dtype=np.uint8)
    for x, y, colour in ((0, 0, 10), (w - 1, 0, 20), (w - 1, h - 1, 30), (0, h - 1, 40),
                         (w // 2, 0, 50), (w - 1, h // 2, 60), (w // 2, h - 1, 70), (0, h // 2, 80)):
        img[y, x] = colour
    return img


def test_each_crop_is_turned_so_its_corner_is_top_left_and_its_edge_on_top():
    crops = crops_of(Image.fromarray(_marked()), fraction=0.2, size=20)  # box 20 px = native resolution
    assert crops.shape == (8, 20, 20, 3)
    for i, colour in enumerate((10, 20, 30, 40)):
        assert crops[i, 0, 0, 0] == colour  # the scan's own corner, top-left in every corner crop
    for i, colour in enumerate((50, 60, 70, 80), start=4):
        ys, xs = np.nonzero(crops[i, :, :, 0] == colour)
        assert list(ys) == [0] and abs(xs[0] - 10) <= 1  # the outer edge on top, its midpoint centred


def test_edge_crops_spread_along_every_edge_with_the_outer_edge_on_top():
    w, h, box = 100, 140, 20
    img = np.full((h, w, 3), 128, dtype=np.uint8)
    # A mark on the outer edge at the centre of each of the 3 boxes per edge (a quarter, half and three
    # quarters of the free space beside the corner boxes), coloured by edge and place.
    marks = {}
    for e, (edge_len, at) in enumerate(((w, lambda t: (t, 0)), (h, lambda t: (w - 1, t)),
                                         (w, lambda t: (t, h - 1)), (h, lambda t: (0, t)))):
        for j, share in enumerate((0.25, 0.5, 0.75)):
            x, y = at(round(share * (edge_len - box)) + box // 2)
            img[y, x] = marks[(e, j)] = 10 + 30 * e + 10 * j
    crops = crops_of(Image.fromarray(img), fraction=0.2, size=box, edge_crops=3)
    assert crops.shape == (4 + 4 * 3, box, box, 3)
    for (e, j), colour in marks.items():
        ys, xs = np.nonzero(crops[4 + 3 * e + j, :, :, 0] == colour)
        assert list(ys) == [0] and abs(xs[0] - box // 2) <= 1, (e, j)  # on top, centred in its box
    # One crop per edge is the old layout exactly: the midpoints.
    assert np.array_equal(crops_of(Image.fromarray(img), 0.2, box, 1), crops_of(Image.fromarray(img), 0.2, box))
    assert np.array_equal(crops_of(Image.fromarray(img), 0.2, box, 1)[4:], crops[[5, 8, 11, 14]])


def test_crops_are_native_pixels_cut_before_the_resize():
    img = np.random.default_rng(0).integers(0, 255, (140, 100, 3), dtype=np.uint8)
    crops = crops_of(Image.fromarray(img), fraction=0.2, size=20)
    assert np.array_equal(crops[0], img[:20, :20])  # top-left: no turn, no resampling


def test_crop_cache_and_dataset_hold_the_same_crops(tmp_path, smoke_splits):
    records = load_splits(str(smoke_splits)).train[:3]
    crops = (0.2, 16)
    cache = UInt8Cache(records, (48, 64), ("front", "back"), str(tmp_path), crops=crops).ensure()
    assert cache.array.shape == (3, 2, 8, 16, 16, 3) and cache.path.name.startswith("crops-")
    cached = CardDataset(records, (48, 64), ("front", "back"), crops=crops, crop_cache=cache)[1]
    direct = CardDataset(records, (48, 64), ("front", "back"), crops=crops)[1]
    assert cached["back_crops"].shape == (8, 3, 16, 16)
    assert torch.equal(cached["back_crops"], direct["back_crops"])
    expected = torch.from_numpy(load_card_crops(records[1].front, *crops)).permute(0, 3, 1, 2)
    assert torch.equal(direct["front_crops"], expected)


def test_crop_augmentation_changes_colours_never_positions():
    x = torch.zeros(1, 8, 3, 16, 16, dtype=torch.uint8)
    x[..., :, 8:] = 200  # a vertical border at column 8 in every crop
    batch = {"back": torch.zeros(1, 3, 32, 24, dtype=torch.uint8), "back_crops": x}
    moved = []
    for i in range(20):
        out = model_inputs(batch, ("back",), torch.device("cpu"), False, AugmentSeed(0, 1, 1, i))["back_crops"]
        step = out[:, 0].diff(dim=-1).abs().mean(dim=(0, 1))  # per column boundary
        moved.append(int(step.argmax()))
    assert set(moved) == {7}  # the border is where it was, whatever the jitter


def test_a_smoke_run_with_crops_exports_a_model_that_predicts_with_them(tmp_path, smoke_splits):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "core.train", "--preset", "smoke", "--output-dir", str(out),
                           "--set", f"data.splits={smoke_splits}", "--set", "data.crop_size=16",
                           "--set", "data.crop_fraction=0.2", "--set", "training.phase2_epochs=1",
                           "--set", f"data.cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((out / "model" / "psa_dual_branch_config.json").read_text())
    assert config["model"]["crop_size"] == 16 and config["model"]["crop_fraction"] == 0.2
    card = load_splits(str(smoke_splits)).test[0]
    pred = subprocess.run([sys.executable, "-m", "core.predict", "--model", str(out / "model"), "--json",
                           card.front, card.back], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert pred.returncode == 0, pred.stderr
    assert 1 <= json.loads(pred.stdout)["grade"] <= 10


def test_each_crop_is_pooled_by_its_mean_and_its_maximum_so_a_one_cell_flaw_survives():
    # A chip two pixels deep lights a cell or two of a crop's last feature map; its mean over 36 cells all
    # but loses it (core/model.py CropEncoder). The "avgmax" pool keeps the map's maximum beside the mean.
    torch.manual_seed(0)
    enc = CropEncoder(width=8, edge_crops=1, pool="avgmax").eval()
    crops = torch.randn(2 * enc.crops, 3, 24, 24)
    with torch.no_grad():
        maps = enc.net(crops)                                                    # [16, 8, 3, 3]
        per_crop = torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1).view(2, enc.crops, 16)
        expected = torch.cat([per_crop[:, :4].mean(1), per_crop[:, :4].amax(1),
                              per_crop[:, 4:].mean(1), per_crop[:, 4:].amax(1)], 1)
        assert torch.equal(enc(crops), expected) and enc.dim == 64
        # one cell of one crop's map raised: the mean pool moves by a ninth of it, the max pool by all of it
        base = enc(crops)
        flaw = crops.clone()
        flaw[5, :, 10:14, 10:14] += 6.0
        moved = (enc(flaw) - base).abs().amax().item()
    avg = CropEncoder(width=8, edge_crops=1, pool="avg").eval()
    avg.load_state_dict(enc.state_dict())  # the same weights: the pool has none
    with torch.no_grad():
        moved_avg = (avg(flaw) - avg(crops)).abs().amax().item()
    assert moved > 2 * moved_avg > 0


def test_models_from_before_the_max_pool_still_load_and_read_their_crops_by_the_mean():
    new = DualBranchGrader("resnet18", criteria=True, crop_size=16, edge_crops=3)
    assert new.config()["crop_pool"] == "avgmax" and new.back.crop_encoder.dim == 4 * 128
    old_config = {k: v for k, v in new.config().items() if k != "crop_pool"}  # an export made before it
    old = DualBranchGrader.from_config(old_config)
    assert old.crop_pool == "avg" and old.back.crop_encoder.dim == 4 * 64 and "crop_pool" not in old.config()
    old.load_state_dict(DualBranchGrader.from_config(old_config).state_dict())
    with torch.no_grad():
        x, crops = torch.rand(2, 3, 48, 40), torch.rand(2 * 16, 3, 16, 16)
        assert old.eval()(x, x, crops, crops)["logits"].shape == (2, 10)
    with pytest.raises(ValueError, match="crop_pool='sum'"):
        DualBranchGrader("resnet18", crop_size=16, crop_pool="sum")
