"""Measured centering (`model.measure_centering`): PSA's bands as a distribution (core/grade_rule.py), the
border reader that measures the shares from the edge crops (core/model.py), and the grade rule that reads
the centering sub-grade from them (core/grade_rule.py)."""
import io

import numpy as np
import pytest
import torch

from core import config
from core.centering import centering_cap
from core.data import load_card_crops, load_card_image, normalize_on_device
from core.grade_rule import (CENTERING, centering_distribution, criteria_logits, predicted_grades,
                             predicted_subgrades)
from core.losses import masked_mse
from core.model import BorderReader, DualBranchGrader, build_model, lower_median
from core.records import CRITERIA, CardRecord, Splits, SplitsError, require_centering_labels
from core.synth.render import render_card
from core.synth.sampling import draw_target_grade, sample_attributes

SMALL = "mobilenet_v3_small"
CROP = 16


def _measuring(seed=0, **kw):
    torch.manual_seed(seed)
    return DualBranchGrader(SMALL, criteria=True, crop_size=CROP, edge_crops=2, measure_centering=True, **kw)


def _inputs(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = 4 + 4 * 2
    return (torch.rand(b, 3, 48, 64, generator=g), torch.rand(b, 3, 48, 64, generator=g),
            torch.rand(b * n, 3, CROP, CROP, generator=g), torch.rand(b * n, 3, CROP, CROP, generator=g))


def test_a_sharp_measurement_gives_the_band_tables_cap():
    rng = np.random.default_rng(0)
    shares = torch.tensor(rng.uniform(0.04, 0.96, (400, 4)), dtype=torch.float32)
    shares[:100] = torch.tensor(rng.uniform(0.3, 0.7, (100, 4)), dtype=torch.float32)  # the fine bands too
    got = centering_distribution(shares, 1e-4).argmax(1) + 1
    assert got.tolist() == [centering_cap(*s) for s in shares.double().tolist()]


def test_the_band_distribution_sums_to_one_and_splits_a_share_on_a_band_edge():
    # front left/right 60/40 is where 9 ends and 8 begins: a measurement there is either, half each.
    p = centering_distribution(torch.tensor([[0.60, 0.5, 0.5, 0.5], [0.5, 0.5, 0.93, 0.5]]), 0.01)
    assert p.sum(1).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert float(p[0, 8]) == pytest.approx(0.5, abs=0.01) and float(p[0, 7]) == pytest.approx(0.5, abs=0.01)
    assert int(p[1].argmax()) + 1 == 1  # a back beyond 90/10 meets no band


def test_the_grade_rule_reads_centering_from_the_measured_shares():
    criteria = torch.full((1, len(CRITERIA), 10), -10.0)
    criteria[:, :, 9] = 10.0  # the head: every criterion a 10
    outputs = {"logits": torch.zeros(1, 10).index_fill_(1, torch.tensor([9]), 10.0), "criteria": criteria,
               "centering": torch.tensor([[0.63, 0.5, 0.5, 0.5]])}  # measured: front 63/37, an 8
    assert predicted_subgrades(criteria_logits(outputs))[0].tolist() == [9, 9, 9, 9]  # the head alone
    measured = {**outputs, "centering_measured": True}
    assert (predicted_subgrades(criteria_logits(measured))[0] + 1).tolist() == [8, 10, 10, 10]
    assert int(predicted_grades(measured)[0]) + 1 == 8 and int(predicted_grades(outputs)[0]) + 1 == 10
    assert CRITERIA[CENTERING] == "centering"


def test_a_measuring_model_marks_its_dual_outputs_and_not_its_back_only_ones():
    back, front, back_crops, front_crops = _inputs()
    model = _measuring().eval()
    with torch.no_grad():
        dual, back_only = model(back, front, back_crops, front_crops), model(back, None, back_crops)
    assert dual["centering_measured"] is True and "centering_measured" not in back_only
    assert dual["centering"].shape == (2, 4) and ((dual["centering"] > 0) & (dual["centering"] < 1)).all()
    # phase 1 has no front: its centering sub-grade stays the criterion head's
    assert torch.equal(criteria_logits(back_only), back_only["criteria"])


def test_the_centering_loss_trains_the_reader_and_nothing_it_shares_with_the_other_criteria():
    back, front, back_crops, front_crops = _inputs()
    model = _measuring().train()
    out = model(back, front, back_crops, front_crops)
    masked_mse(out["centering"], torch.full((2, 4), 0.6), torch.ones(2, 4, dtype=torch.bool)).backward()
    for name, p in model.named_parameters():
        touched = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert touched == (".border_reader." in name), name


def _scan_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_the_reader_learns_border_shares_from_synthetic_scans():
    rng = np.random.default_rng(0)
    views, crops, shares = [], [], []
    for _ in range(128):  # small scans, cut and resized by the pipeline's own code
        front, _, drawn = render_card(rng, sample_attributes(rng, draw_target_grade(rng)), (120, 168))
        scan = _scan_bytes(front)
        views.append(load_card_image(scan, (48, 64)))
        crops.append(load_card_crops(scan, 0.24, 29, 3))
        shares.append([drawn.front_lr, drawn.front_tb])
    def tensor(arrays):
        return normalize_on_device(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), False)
    v, x, y = tensor(views), tensor([c for card in crops for c in card]), torch.tensor(shares)
    n = 16  # crops per card
    torch.manual_seed(0)
    reader = BorderReader(29, 3)
    opt = torch.optim.Adam(reader.parameters(), 1e-2)
    for _ in range(120):
        loss = ((reader(x[:96 * n], v[:96]) - y[:96]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        error = (reader(x[96 * n:], v[96:]) - y[96:]).abs().mean().item()
    guess = (y[96:] - y[:96].mean(0)).abs().mean().item()  # the best a reader blind to the borders does
    assert error < 0.75 * guess, (error, guess)


@pytest.mark.parametrize("shape, dim", [((2, 12, 3, 29, 29), -1), ((2, 4, 3, 3, 87), 2), ((2, 3, 64, 24), -2),
                                        ((5,), 0), ((3, 1), -1), ((4, 6), 0)])
def test_the_readers_median_is_torchs_lower_median_to_the_bit(shape, dim):
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(shape, generator=g)
    for x in (noise, (noise * 8).floor() / 8, noise.transpose(0, -1), noise.bfloat16()):  # ties, strides, bf16
        assert torch.equal(lower_median(x, dim), x.median(dim=dim).values)
    grad = noise.clone().requires_grad_()  # where a gradient must flow, torch's own (numpy would refuse)
    lower_median(grad, dim).sum().backward()
    assert grad.grad.sum() == grad.grad.numel() // shape[dim]


def test_phase_2_starts_the_front_reader_from_the_back_one():
    model = _measuring()
    trained = _measuring(seed=1)
    model.init_from_phase1(trained.state_dict())
    for a, b in zip(model.front.border_reader.parameters(), trained.back.border_reader.parameters()):
        assert torch.equal(a, b)


def test_measure_centering_travels_with_the_model_config_and_old_configs_lack_it():
    model = _measuring()
    assert model.config()["measure_centering"] is True
    rebuilt = DualBranchGrader.from_config(model.config())
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.measure_centering
    assert "measure_centering" not in DualBranchGrader(SMALL, criteria=True, crop_size=CROP).config()
    old = {"backbone": SMALL, "criteria": True, "crop_size": CROP}  # an export from before this key
    assert not DualBranchGrader.from_config(old).measure_centering


def test_measuring_without_crops_is_a_config_error_naming_both_keys():
    cfg = config.load_preset("local", ["data.crop_size=0", "model.measure_centering=true", f"model.backbone={SMALL}"])
    with pytest.raises(config.ConfigError, match=r"measure_centering.*data\.crop_size"):
        build_model(cfg.model, torch.device("cpu"), cfg.data.crop_size)


def test_a_measuring_grader_refuses_cards_without_centering_labels():
    def card(i, centering):
        return CardRecord(id=f"c{i}", front="f.jpg", back="b.jpg", grade=9, centering=centering)

    unlabelled = Splits(path="cards/splits.json", train=[card(i, None) for i in range(3)])
    expected = r"cards/splits\.json.*none of the 3 training cards.*measure_centering = false"
    with pytest.raises(SplitsError, match=expected):
        require_centering_labels(unlabelled)
    require_centering_labels(Splits(path="s.json", train=[card(0, None), card(1, (0.5, 0.5, 0.6, 0.5))]))
