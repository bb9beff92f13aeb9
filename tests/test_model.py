"""core.model.DualBranchGrader: shapes, fusion, config round trip, local weights, phase-2 initialisation."""
import pytest
import torch
import torchvision

from core import config
from core.losses import grading_loss
from core.model import BACKBONES, DualBranchGrader

SMALL = "mobilenet_v3_small"


def _images(seed=0, b=2, h=48, w=64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 3, h, w, generator=g)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return DualBranchGrader(SMALL, **kw).eval()


def test_dual_forward_shapes():
    back, front = _images()
    with torch.no_grad():
        out = _model()(back, front)
    assert out["logits"].shape == (2, 10)
    assert out["edge"].shape == (2,)
    assert out["centering"].shape == (2, 4)
    assert out["center_valid"].tolist() == [True] * 4


def test_back_only_forward_uses_back_branch_and_marks_front_centering_invalid():
    model = _model()
    back, _ = _images()
    with torch.no_grad():
        out = model(back)
        b = model.back(back)
    assert out["logits"].shape == (2, 10) and out["edge"].shape == (2,) and out["centering"].shape == (2, 4)
    assert torch.equal(out["logits"], b["logits"]) and torch.equal(out["edge"], b["edge"])
    assert out["center_valid"].tolist() == [False, False, True, True]
    assert torch.equal(out["centering"][:, 2:], b["centering"])
    assert torch.isfinite(out["centering"]).all()


def test_fused_logits_are_lambda_weighted_sum_of_branch_logits():
    model = _model(lambda_fusion=0.7)
    back, front = _images()
    with torch.no_grad():
        out = model(back, front)
        b, f = model.back(back), model.front(front)
    torch.testing.assert_close(out["logits"], 0.7 * b["logits"] + 0.3 * f["logits"])
    torch.testing.assert_close(out["edge"], 0.7 * b["edge"] + 0.3 * f["edge"])


def test_centering_is_front_then_back_from_each_sides_branch():
    model = _model()
    back, front = _images()
    with torch.no_grad():
        out = model(back, front)
        b, f = model.back(back), model.front(front)
    torch.testing.assert_close(out["centering"], torch.cat([f["centering"], b["centering"]], dim=1))


def test_edge_and_centering_are_in_unit_interval():
    with torch.no_grad():
        out = _model()(*_images())
    for key in ("edge", "centering"):
        assert ((out[key] >= 0) & (out[key] <= 1)).all()


def test_config_round_trip_gives_identical_outputs():
    model = _model(lambda_fusion=0.6, dropout=0.1)
    cfg = model.config()
    assert cfg == {"backbone": SMALL, "lambda_fusion": 0.6, "dropout": 0.1, "num_grades": 10, "criteria": False,
                   "crop_size": 0, "crop_fraction": 0.24}
    torch.manual_seed(123)  # a different init, so equality must come from the state dict
    rebuilt = DualBranchGrader.from_config(cfg)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    back, front = _images()
    with torch.no_grad():
        a, b = model(back, front), rebuilt(back, front)
    for key in ("logits", "edge", "centering"):
        assert torch.equal(a[key], b[key])


def test_from_config_requires_backbone():
    with pytest.raises(ValueError, match="'backbone'"):
        DualBranchGrader.from_config({"lambda_fusion": 0.7})


def test_backbone_choices_match_config_schema():
    assert tuple(BACKBONES) == tuple(config.BACKBONES)


def test_unknown_backbone_error_names_value_and_choices():
    with pytest.raises(ValueError, match=r"'vgg11'.*resnet18.*convnext_tiny"):
        DualBranchGrader("vgg11")


def test_lambda_fusion_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match="lambda_fusion=1.5"):
        DualBranchGrader(SMALL, lambda_fusion=1.5)


def test_torchvision_weights_file_loads_into_both_branches(tmp_path):
    torch.manual_seed(7)
    source = torchvision.models.mobilenet_v3_small(weights=None)  # full model, ImageNet head included
    path = tmp_path / "mnv3s.pth"
    torch.save(source.state_dict(), path)
    model = DualBranchGrader(SMALL, weights=str(path))
    src = source.state_dict()
    for branch in (model.back, model.front):
        own = branch.backbone.state_dict()
        assert set(own) <= set(src)
        assert all(torch.equal(own[k], src[k]) for k in own)


def test_branch_state_dict_saved_as_weights_file_loads(tmp_path):
    donor = _model(seed=3)
    path = tmp_path / "branch.pth"
    torch.save(donor.back.backbone.state_dict(), path)
    torch.manual_seed(99)
    model = DualBranchGrader(SMALL, weights=str(path))
    for k, v in donor.back.backbone.state_dict().items():
        assert torch.equal(model.front.backbone.state_dict()[k], v)


def test_missing_weights_file_error_names_the_path(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(ValueError, match=f"{path}.*does not exist"):
        DualBranchGrader(SMALL, weights=str(path))


def test_weights_for_another_architecture_error_names_keys(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"does not match mobilenet_v3_small \(missing: features\.0\.0\.weight"):
        DualBranchGrader(SMALL, weights=str(path))


def test_weights_file_that_is_not_a_state_dict_is_rejected(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read"):
        DualBranchGrader(SMALL, weights=str(path))


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_builds_and_runs(name):
    torch.manual_seed(0)
    model = DualBranchGrader(name).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = model(x, x)
    assert out["logits"].shape == (1, 10) and torch.isfinite(out["logits"]).all()


def test_init_from_phase1_loads_back_branch_and_copies_backbone_into_front():
    phase1 = _model(seed=1)
    model = _model(seed=2)
    front_head_before = model.front.grade_head.weight.clone()
    model.init_from_phase1(phase1.state_dict())
    p1 = phase1.back.state_dict()
    assert all(torch.equal(v, p1[k]) for k, v in model.back.state_dict().items())
    back_bb = model.back.backbone.state_dict()
    assert all(torch.equal(v, back_bb[k]) for k, v in model.front.backbone.state_dict().items())
    assert torch.equal(model.front.grade_head.weight, front_head_before)


def test_init_from_phase1_accepts_compiled_and_ddp_prefixes():
    phase1 = _model(seed=1)
    model = _model(seed=2)
    model.init_from_phase1({f"module._orig_mod.{k}": v for k, v in phase1.state_dict().items()})
    assert torch.equal(model.back.grade_head.weight, phase1.back.grade_head.weight)


def test_init_from_phase1_rejects_a_different_architecture():
    other = DualBranchGrader("resnet18")
    with pytest.raises(ValueError, match="phase 1 state dict does not match a mobilenet_v3_small"):
        _model().init_from_phase1(other.state_dict())


def test_channels_last_gives_the_same_outputs():
    model = _model()
    back, front = _images()
    with torch.no_grad():
        ref = model(back, front)["logits"]
        model = model.to(memory_format=torch.channels_last)
        cl = model(back.contiguous(memory_format=torch.channels_last),
                   front.contiguous(memory_format=torch.channels_last))["logits"]
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_forward_and_loss_backward_on_cpu():
    model = _model().train()
    back, front = _images()
    targets = {"grade": torch.tensor([2, 8]), "edge": torch.tensor([0.1, 0.0]),
               "edge_mask": torch.tensor([True, False]), "centering": torch.full((2, 4), 0.5),
               "center_mask": torch.tensor([True, True])}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(back, front)
        loss, _ = grading_loss(out, targets, 0.7, 0.05, 0.1)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.front.grade_head.weight.grad is not None


def test_back_only_training_step_leaves_front_branch_without_gradient():
    model = _model().train()
    back, _ = _images()
    targets = {"grade": torch.tensor([2, 8]), "edge": torch.zeros(2), "edge_mask": torch.ones(2, dtype=torch.bool),
               "centering": torch.full((2, 4), 0.5), "center_mask": torch.ones(2, dtype=torch.bool)}
    loss, _ = grading_loss(model(back), targets, 0.7, 0.05, 0.1)
    loss.backward()
    assert all(p.grad is None for p in model.front.parameters())
    assert model.back.center_head.weight.grad is not None


def test_prior_shift_travels_in_the_outputs_and_the_state_dict_and_old_state_dicts_load_without_one():
    model = _model(criteria=True)
    grade, criteria = torch.linspace(-1, 1, 10), torch.linspace(-2, 2, 40).view(4, 10)
    model.set_prior_shift(grade, criteria)
    back, front = _images()
    with torch.no_grad():
        for out in (model(back, front), model(back)):       # both modes: phase 1 validation reads it too
            assert torch.equal(out["grade_prior_shift"], grade)
            assert torch.equal(out["criteria_prior_shift"], criteria)
    state = model.state_dict()
    fresh = _model(seed=1, criteria=True)
    fresh.load_state_dict(state)                            # strict: the shifts are part of the weights
    assert torch.equal(fresh.grade_prior_shift, grade) and torch.equal(fresh.criteria_prior_shift, criteria)
    old = {k: v for k, v in state.items() if "prior_shift" not in k}   # saved before the shift existed
    fresh.load_state_dict(old)
    assert not fresh.grade_prior_shift.any() and not fresh.criteria_prior_shift.any()
    assert "grade_prior_shift" in state and len(old) == len(state) - 2
