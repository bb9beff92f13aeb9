"""The detail map (core/detail_map.py): a 4th input channel that keeps a scan's thin bright lines (a surface
scratch, a print line) visible after the resize to the whole-card view; made on the scan before the
resize, cached with the view, read the same way by training, evaluation and prediction. Two kinds: "lines"
(long slanted lines: scratches, not the print's own marks) and "tophat" (every thin bright mark), which
models from before "lines" read."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from core.augment import augment_batch, batch_generator
from core.config import ConfigError, load_preset
from core.data import CardDataset, UInt8Cache, load_card_image, model_input_settings, model_inputs, normalize_on_device
from core.detail_map import detail_map, letterbox_box, median3x3, opening3x3
from core.model import DualBranchGrader, widen_stem
from core.records import load_splits

ROOT = Path(__file__).resolve().parent.parent


def _scratched_card(w: int = 200, h: int = 280) -> Image.Image:
    """A mid-tone card with a textured print (dark 2-px ink strokes) and one 1-px white scratch at half
    opacity from (60, 40) to (140, 240), as the synthetic generator draws one (docs/design.md §2)."""
    card = Image.new("RGB", (w, h), (150, 90, 60))
    ink = ImageDraw.Draw(card)
    for y in range(20, h - 20, 9):
        ink.line([(20, y), (w - 20, y)], fill=(40, 30, 30), width=2)
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ImageDraw.Draw(overlay).line([(60, 40), (140, 240)], fill=(255, 255, 255, 128), width=1)
    return Image.alpha_composite(card.convert("RGBA"), overlay).convert("RGB")


@pytest.mark.parametrize("kind", ["lines", "tophat"])
def test_a_faint_scratch_lost_in_the_view_is_strong_in_the_detail_map(kind):
    card, size = _scratched_card(), (72, 96)
    clean = Image.new("RGB", card.size, (150, 90, 60))
    ImageDraw.Draw(clean)  # same print, no scratch
    for y in range(20, card.height - 20, 9):
        ImageDraw.Draw(clean).line([(20, y), (card.width - 20, y)], fill=(40, 30, 30), width=2)
    mapped, unscratched = detail_map(card, size, kind), detail_map(clean, size, kind)
    # Where the scratch runs (its middle: x 100 of 200, y 140 of 280 -> 36, 48 of the view), the map is
    # near full scale; the same card without the scratch has no such line (dark ink does not count).
    assert mapped[44:53, 32:41].max() >= 200
    assert unscratched.max() <= 40
    # In the resized view the same scratch is a weak bump: under a third of the map's contrast.
    view = np.asarray(ImageOps.pad(card, size, method=Image.Resampling.BILINEAR)).min(axis=2).astype(int)
    plain = np.asarray(ImageOps.pad(clean, size, method=Image.Resampling.BILINEAR)).min(axis=2).astype(int)
    assert np.abs(view - plain).max() < mapped.max() / 3


def _printed_card(scratch: bool) -> Image.Image:
    """A mid-tone card whose print has its own thin bright marks, as the generator's does: a frame outlined
    by a 1-px light line and rows of dark words 4 px high with 1-px gaps; with `scratch`, one slanted
    scratch exactly as bright as the frame's outline (the same white at the same opacity)."""
    w, h = 200, 280
    rng = np.random.default_rng(0)
    card = Image.new("RGB", (w, h), (150, 90, 60))
    ink = ImageDraw.Draw(card)
    for y in range(150, 250, 8):
        x = 30
        while x < 170:
            word = int(rng.integers(4, 16))
            ink.rectangle([x, y, x + word - 1, y + 3], fill=(30, 25, 25))
            x += word + 1
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    light = ImageDraw.Draw(overlay)
    light.rectangle([20, 20, w - 21, h - 21], outline=(255, 255, 255, 128))
    if scratch:
        light.line([(50, 40), (150, 130)], fill=(255, 255, 255, 128), width=1)
    return Image.alpha_composite(card.convert("RGBA"), overlay).convert("RGB")


def test_the_lines_map_keeps_a_slanted_scratch_and_drops_the_prints_own_thin_marks():
    size = (72, 96)
    scratched, clean = _printed_card(True), _printed_card(False)
    tophat, lines = detail_map(clean, size, "tophat"), detail_map(clean, size, "lines")
    # The top-hat shows the frame's outline at full scale, like a scratch: on a clean card it cannot tell.
    assert tophat.max() == 255
    # The lines map keeps the scratch (its middle, (100, 85) of the scan, is (36, 29) of the view) at full
    # scale and the print's axis-aligned outline and short word gaps under half of it.
    assert detail_map(scratched, size, "lines")[25:34, 31:41].max() == 255
    assert lines.max() < 128
    assert lines[20:80, 5:10].max() < 128 and lines[55:88, 14:58].max() < 128  # frame side, text block


def _creased(card: Image.Image) -> Image.Image:
    """`card` with a folded corner drawn as the generator draws a crease of severity 0.3 on a 200-px-wide
    scan (core/synth/defects.py): a soft shadow 3 px wide beside a white highlight 2 px wide, from (110, 0)
    to (200, 90), cutting off the top-right corner."""
    overlay = Image.new("RGBA", card.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.line([(111.8, 1.8), (201.8, 91.8)], fill=(20, 20, 30, 94), width=3)
    draw.line([(110, 0), (200, 90)], fill=(255, 255, 255, 215), width=2)
    return Image.alpha_composite(card.convert("RGBA"), overlay).convert("RGB")


def test_the_lines_creases_map_adds_a_channel_that_lights_a_crease_the_lines_map_misses():
    size = (72, 96)
    clean, scratched = _printed_card(False), _printed_card(True)
    creased = _creased(clean)
    # The crease's middle, (155, 45) of the scan, is (56, 15) of the view. Its 2-px highlight survives the
    # 3x3 median, so the lines map shows it no brighter than the clean card's own print marks ...
    near_crease = (slice(10, 21), slice(50, 62))
    assert detail_map(creased, size, "lines")[near_crease].max() < detail_map(clean, size, "lines").max() + 40
    # ... while the second channel of lines_creases lights it at full scale, and only where it runs.
    both = detail_map(creased, size, "lines_creases")
    assert both.shape == (96, 72, 2) and both.dtype == np.uint8
    assert both[near_crease][..., 1].max() == 255
    assert both[55:88, 14:58, 1].max() < 96  # the text block, far from the crease
    # The first channel is the lines map, unchanged; a 1-px scratch is no crease, and a clean print none.
    assert np.array_equal(both[..., 0], detail_map(creased, size, "lines"))
    assert detail_map(scratched, size, "lines_creases")[25:34, 31:41, 1].max() < 96
    assert detail_map(clean, size, "lines_creases")[..., 1].max() < 96


def test_a_lines_creases_model_reads_five_channels_from_cache_to_export_and_prediction(tmp_path, smoke_splits):
    from core.export import export_model, load_exported
    from core.inference import predict_card

    records = load_splits(str(smoke_splits)).train[:2]
    cache = UInt8Cache(records, (48, 64), ("front", "back"), str(tmp_path), detail="lines_creases").ensure()
    lines = UInt8Cache(records, (48, 64), ("front", "back"), str(tmp_path), detail="lines").ensure()
    assert cache.array.shape == (2, 2, 64, 48, 5) and cache.path != lines.path
    assert np.array_equal(cache.array[..., :4], lines.array)
    # A cache under the same key with another layout (a map of this kind with other channels, written by
    # another version) is rebuilt, not read as if it fitted.
    built = cache.array.copy()
    np.save(cache.path, built[..., :4])
    again = UInt8Cache(records, (48, 64), ("front", "back"), str(tmp_path), detail="lines_creases").ensure()
    assert again.array.shape == (2, 2, 64, 48, 5) and np.array_equal(again.array, built)
    model = DualBranchGrader("resnet18", criteria=True, detail=True, detail_kind="lines_creases")
    assert model.front.backbone.conv1.in_channels == 5
    item = CardDataset(records, (48, 64), ("front", "back"), cache, detail="lines_creases")[0]
    inputs = model_inputs({k: v.unsqueeze(0) for k, v in item.items() if k in ("front", "back")},
                          ("front", "back"), torch.device("cpu"), False)
    assert inputs["front"].shape == (1, 5, 64, 48)
    export_model(model.eval(), str(tmp_path / "model"), {"image_size": [48, 64], "sides": ["front", "back"]})
    loaded, config = load_exported(str(tmp_path / "model"))
    assert config["model"]["detail_kind"] == "lines_creases"
    assert config["normalization"]["mean"][3:] == [0.0, 0.0] and config["normalization"]["std"][3:] == [1.0, 1.0]
    assert 1 <= predict_card(loaded, config, records[0].front, records[0].back)["grade"] <= 10


def test_an_unknown_detail_kind_is_refused_by_the_map_the_model_and_the_preset(tmp_path):
    with pytest.raises(ValueError, match="detail map kind 'edges'"):
        detail_map(Image.new("RGB", (20, 28)), (10, 14), "edges")
    with pytest.raises(ValueError, match="data.detail_kind='edges'"):
        DualBranchGrader("resnet18", detail=True, detail_kind="edges")
    preset = tmp_path / "p.toml"
    preset.write_text('[data]\ndetail = true\ndetail_kind = "edges"\n')
    with pytest.raises(ConfigError, match="detail_kind"):
        load_preset(str(preset))


def test_a_model_says_which_map_it_reads_and_older_models_read_the_tophat():
    new = DualBranchGrader("resnet18", criteria=True, crop_size=16, detail=True).config()
    assert new["detail_kind"] == "lines" and model_input_settings(new)[1] == "lines"
    assert DualBranchGrader.from_config(new).detail_kind == "lines"
    # An export or checkpoint from before there were two kinds says only "detail": true.
    old = {k: v for k, v in new.items() if k != "detail_kind"}
    assert model_input_settings(old)[1] == "tophat" and DualBranchGrader.from_config(old).detail_kind == "tophat"
    plain = DualBranchGrader("resnet18", criteria=True).config()
    assert "detail_kind" not in plain and model_input_settings(plain)[1] == ""


RANK_FILTER_SHAPES = [(280, 200), (1, 1), (1, 7), (2, 3), (9, 2), (31, 17)]  # a scan, and every border case


def _random_and_binary(shape, seed):
    """A noise image and a black-and-white one (isolated specks and thin lines) of this shape."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8), (rng.random(shape) > 0.7).astype(np.uint8) * 255


@pytest.mark.parametrize("shape", RANK_FILTER_SHAPES)
def test_the_fast_median_is_pils_median_filter_pixel_for_pixel(shape):
    # The vectorised median replaced PIL's MedianFilter(3) for speed: the detail map (and so every cache and
    # trained model) must not change by a single grey level, borders included.
    for gray in _random_and_binary(shape, shape[0] * 100 + shape[1]):
        expected = np.asarray(Image.fromarray(gray).filter(ImageFilter.MedianFilter(3)))
        np.testing.assert_array_equal(median3x3(gray), expected)


@pytest.mark.parametrize("shape", RANK_FILTER_SHAPES)
def test_the_fast_opening_is_pils_min_then_max_filter_pixel_for_pixel(shape):
    # The crease channel's 3x3 grey opening moved from torch's stride-1 max pools to shifted numpy minima
    # and maxima for speed: the same values as PIL's own rank filters, borders included.
    for gray in _random_and_binary(shape, shape[0] * 100 + shape[1] + 1):
        expected = np.asarray(Image.fromarray(gray).filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3)))
        np.testing.assert_array_equal(opening3x3(gray), expected)


@pytest.mark.parametrize("scan", [(200, 280), (280, 200), (201, 201), (37, 90)])
def test_the_map_lies_exactly_where_the_letterboxed_view_puts_the_card(scan):
    size = (72, 96)
    x, y, w, h = letterbox_box(scan, size)
    marker = np.asarray(ImageOps.pad(Image.new("RGB", scan, (255, 255, 255)), size, color=(0, 0, 0)))
    ys, xs = np.nonzero(marker.max(axis=2))
    assert (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) == (x, y, w, h)
    # A bright 1-px frame 2 px inside the scan's border shows in the map inside that box, along all four
    # of its sides, and nowhere outside it.
    frame = Image.new("RGB", scan, (90, 90, 90))
    ImageDraw.Draw(frame).rectangle([2, 2, scan[0] - 3, scan[1] - 3], outline=(255, 255, 255))
    mapped = detail_map(frame, size, "tophat")
    outside = mapped.copy()
    outside[y:y + h, x:x + w] = 0
    assert outside.max() == 0
    inside = mapped[y:y + h, x:x + w]
    assert min(inside[:3].max(), inside[-3:].max(), inside[:, :3].max(), inside[:, -3:].max()) == 255
    # The lines map goes through one more pooling and the segment averages: a bright diagonal from corner
    # to corner shows inside the box, on both halves of it, and still nothing lies outside.
    cross = Image.new("RGB", scan, (90, 90, 90))
    ImageDraw.Draw(cross).line([(0, 0), (scan[0] - 1, scan[1] - 1)], fill=(255, 255, 255))
    slanted = detail_map(cross, size, "lines")
    outside = slanted.copy()
    outside[y:y + h, x:x + w] = 0
    assert outside.max() == 0
    inside = slanted[y:y + h, x:x + w]
    assert min(inside[: h // 2, : w // 2].max(), inside[h // 2:, w // 2:].max()) == 255


def test_a_widened_pretrained_stem_computes_what_the_3_channel_network_did(tmp_path):
    torch.manual_seed(0)
    for name in ("resnet18", "mobilenet_v3_small"):
        weights = tmp_path / f"{name}.pth"
        torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), weights)
        plain = DualBranchGrader(name, weights=str(weights), criteria=True).eval()
        wide = DualBranchGrader(name, weights=str(weights), criteria=True, detail=True).eval()
        own = wide.state_dict()
        wide.load_state_dict({k: own[k] if k in own and own[k].shape != v.shape else v  # heads alike
                              for k, v in plain.state_dict().items()})
        rgb = torch.randn(2, 3, 64, 48)
        with torch.no_grad():
            a = plain(rgb, rgb)["logits"]
            b = wide(torch.cat([rgb, torch.rand(2, 1, 64, 48)], 1), torch.cat([rgb, torch.zeros(2, 1, 64, 48)], 1))
        assert torch.allclose(a, b["logits"], atol=1e-5), name  # the new channel starts with no say
    net = torch.nn.Sequential(torch.nn.Conv2d(5, 4, 3))  # no 3-channel input convolution
    with pytest.raises(ValueError, match="3-channel"):
        widen_stem(net, 1, pretrained=True)


def test_a_widened_stem_trained_from_scratch_draws_the_new_channel_like_the_others():
    torch.manual_seed(0)
    stem = DualBranchGrader("resnet18", detail=True).back.backbone.conv1.weight
    assert stem.shape[1] == 4
    colour, extra = stem[:, :3].std().item(), stem[:, 3].std().item()
    assert 0.8 < extra / colour < 1.25  # not zero: from scratch it must learn from the first step


def test_the_detail_channel_is_read_as_a_share_and_augmented_without_colour_jitter():
    x = torch.randint(0, 256, (3, 4, 20, 16), dtype=torch.uint8)
    out = normalize_on_device(x, channels_last=False)
    assert torch.allclose(out[:, 3], x[:, 3].float() / 255.0)
    assert torch.allclose(out[:, :3], normalize_on_device(x[:, :3].contiguous(), False))
    # The colour channels augment exactly as a 3-channel batch does; the 4th gets the blur and the turn only.
    xf = x.float() / 255.0
    g4, g3 = (batch_generator(1, 2, 3, 4, torch.device("cpu")) for _ in range(2))
    four, three = augment_batch(xf, g4), augment_batch(xf[:, :3].contiguous(), g3)
    assert torch.allclose(four[:, :3], three, atol=1e-6)
    blank = torch.zeros(2, 4, 20, 16)
    blank[:, :3] = 0.5
    turned = augment_batch(blank, batch_generator(0, 1, 1, 0, torch.device("cpu")))
    assert turned[:, 3].abs().max() == 0  # padding from the turn is "no line", never grey


def test_cache_dataset_and_prediction_read_the_same_four_channels(tmp_path, smoke_splits):
    records = load_splits(str(smoke_splits)).train[:3]
    cache = UInt8Cache(records, (48, 64), ("front", "back"), str(tmp_path), detail="lines").ensure()
    tophat = UInt8Cache(records, (48, 64), ("front", "back"), str(tmp_path), detail="tophat").ensure()
    plain = UInt8Cache(records, (48, 64), ("front", "back"), str(tmp_path)).ensure()
    assert cache.array.shape == (3, 2, 64, 48, 4) and plain.array.shape == (3, 2, 64, 48, 3)
    assert len({cache.path, tophat.path, plain.path}) == 3  # one never stands in for another
    assert not np.array_equal(cache.array[..., 3], tophat.array[..., 3])
    cached = CardDataset(records, (48, 64), ("front", "back"), cache, detail="lines")[1]
    direct = CardDataset(records, (48, 64), ("front", "back"), detail="lines")[1]
    assert cached["front"].shape == (4, 64, 48) and torch.equal(cached["front"], direct["front"])
    expected = load_card_image(records[1].front, (48, 64), detail="lines")
    assert torch.equal(direct["front"], torch.from_numpy(expected).permute(2, 0, 1))
    assert np.array_equal(expected[..., :3], load_card_image(records[1].front, (48, 64)))
    for cache_of_another_kind, kind in ((plain, "lines"), (tophat, "lines"), (cache, "")):
        with pytest.raises(ValueError, match="detail map"):
            CardDataset(records, (48, 64), ("front", "back"), cache_of_another_kind, detail=kind)
    inputs = model_inputs({k: v.unsqueeze(0) for k, v in direct.items() if k in ("front", "back")},
                          ("front", "back"), torch.device("cpu"), False)
    assert inputs["back"].shape == (1, 4, 64, 48)


@pytest.mark.parametrize("kind", ["lines", "lines_creases"])
def test_a_smoke_run_with_the_detail_map_and_edge_crops_exports_a_model_that_predicts_and_evaluates_with_them(
        tmp_path, smoke_splits, kind):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "core.train", "--preset", "smoke", "--output-dir", str(out),
                           "--set", f"data.splits={smoke_splits}", "--set", "data.detail=true",
                           "--set", f"data.detail_kind={kind}",
                           "--set", "data.crop_size=16", "--set", "data.crop_fraction=0.2",
                           "--set", "data.edge_crops=2",
                           "--set", "training.phase2_epochs=1", "--set", f"data.cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((out / "model" / "psa_dual_branch_config.json").read_text())
    assert config["model"]["detail"] is True and config["model"]["detail_kind"] == kind
    assert config["model"]["edge_crops"] == 2
    channels = 2 if kind == "lines_creases" else 1  # each read as x / 255
    assert config["normalization"]["mean"][3:] == [0.0] * channels
    assert config["normalization"]["std"][3:] == [1.0] * channels
    card = load_splits(str(smoke_splits)).test[0]
    pred = subprocess.run([sys.executable, "-m", "core.predict", "--model", str(out / "model"), "--json",
                           card.front, card.back], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert pred.returncode == 0, pred.stderr
    assert 1 <= json.loads(pred.stdout)["grade"] <= 10
    report = tmp_path / "report.json"
    ev = subprocess.run([sys.executable, "-m", "core.evaluate", "--model", str(out / "model"), "--splits",
                         str(smoke_splits), "--output", str(report)], capture_output=True, text=True, cwd=ROOT,
                        timeout=300)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(report.read_text())["n"] == len(load_splits(str(smoke_splits)).test)


def test_a_run_checkpointed_before_there_were_two_maps_resumes_with_the_tophat_and_not_with_lines():
    from core.checkpoint import CheckpointError, check_model_config

    current = DualBranchGrader("resnet18", criteria=True, detail=True, detail_kind="tophat").config()
    saved = {k: v for k, v in current.items() if k != "detail_kind"}  # what such a checkpoint holds
    check_model_config(saved, current, "last.pth")
    lines = DualBranchGrader("resnet18", criteria=True, detail=True).config()
    with pytest.raises(CheckpointError, match="detail_kind: checkpoint 'tophat' vs preset 'lines'"):
        check_model_config(saved, lines, "last.pth")
