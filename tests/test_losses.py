"""core.losses: EMD and CE on hand-computed cases, the weighted total, masked auxiliary terms."""
import math

import pytest
import torch

from core.losses import GradingLoss, grading_loss, squared_emd

BIG = 60.0  # a logit this large makes softmax one-hot to float32 precision


def _one_hot_logits(classes):
    logits = torch.zeros(len(classes), 10)
    logits[torch.arange(len(classes)), torch.tensor(classes)] = BIG
    return logits


def test_emd_of_uniform_prediction_matches_hand_sum():
    # y = index 3: CDF_k = (k+1)/10; the target CDF is 0 below k=3 and 1 from k=3.
    # below: (1^2 + 2^2 + 3^2)/100 = 0.14; from k=3: (6^2+5^2+4^2+3^2+2^2+1^2+0^2)/100 = 0.91
    emd = squared_emd(torch.zeros(1, 10), torch.tensor([3]))
    assert emd.shape == (1,)
    assert emd.item() == pytest.approx(1.05, abs=1e-6)


def test_emd_of_confident_prediction_is_the_grade_distance():
    # predicting index 5 for a true index 2 leaves CDF terms k = 2, 3, 4 off by exactly 1 each
    emd = squared_emd(_one_hot_logits([5, 2, 9]), torch.tensor([2, 2, 0]))
    assert emd.tolist() == pytest.approx([3.0, 0.0, 9.0], abs=1e-6)


def test_emd_of_split_prediction_at_both_ends():
    # half the mass on index 0 and half on index 9, truth index 0: CDF 0.5 for k = 0..8 -> 9 * 0.25
    logits = torch.full((1, 10), -BIG)
    logits[0, 0] = logits[0, 9] = 0.0
    assert squared_emd(logits, torch.tensor([0])).item() == pytest.approx(2.25, abs=1e-6)


def _targets(grades, edge=None, edge_mask=None, centering=None, center_mask=None):
    b = len(grades)
    return {
        "grade": torch.tensor(grades),
        "edge": torch.zeros(b) if edge is None else torch.tensor(edge),
        "edge_mask": torch.zeros(b, dtype=torch.bool) if edge_mask is None else torch.tensor(edge_mask),
        "centering": torch.full((b, 4), 0.5) if centering is None else torch.tensor(centering),
        "center_mask": torch.zeros(b, dtype=torch.bool) if center_mask is None else torch.tensor(center_mask),
    }


def _outputs(logits, edge=None, centering=None, **extra):
    b = logits.shape[0]
    out = {"logits": logits, "edge": torch.full((b,), 0.5) if edge is None else edge,
           "centering": torch.full((b, 4), 0.5) if centering is None else centering}
    out.update(extra)
    return out


def test_ce_of_uniform_prediction_is_log_ten():
    _, parts = grading_loss(_outputs(torch.zeros(2, 10)), _targets([0, 7]), 0.7, 0.05, 0.1)
    assert parts["ce"].item() == pytest.approx(math.log(10), abs=1e-6)


def test_total_is_the_weighted_sum_of_parts():
    torch.manual_seed(0)
    out = _outputs(torch.randn(3, 10), edge=torch.tensor([0.2, 0.5, 0.9]),
                   centering=torch.tensor([[0.4, 0.5, 0.6, 0.5]] * 3))
    tgt = _targets([1, 4, 9], edge=[0.0, 0.3, 1.0], edge_mask=[True, True, True],
                   centering=[[0.5] * 4] * 3, center_mask=[True, True, True])
    total, p = grading_loss(out, tgt, 0.6, 0.05, 0.1)
    expected = 0.6 * p["emd"] + 0.4 * p["ce"] + 0.05 * p["edge"] + 0.1 * p["center"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert p["edge"].item() == pytest.approx((0.2 ** 2 + 0.2 ** 2 + 0.1 ** 2) / 3, rel=1e-5)
    assert p["center"].item() == pytest.approx(2 * 0.1 ** 2 / 4, rel=1e-5)


def test_parts_are_detached_and_total_is_differentiable():
    logits = torch.zeros(2, 10, requires_grad=True)
    total, parts = grading_loss(_outputs(logits), _targets([0, 1]), 0.7, 0.05, 0.1)
    assert total.requires_grad and total.dim() == 0
    assert set(parts) == {"emd", "ce", "edge", "center", "criteria"}
    assert not any(v.requires_grad for v in parts.values())


def test_no_aux_labels_gives_finite_total_and_zero_aux_parts():
    tgt = _targets([3, 4], edge=[float("nan")] * 2, centering=[[float("nan")] * 4] * 2)
    edge = torch.tensor([0.3, 0.7], requires_grad=True)
    total, parts = grading_loss(_outputs(torch.zeros(2, 10), edge=edge), tgt, 0.7, 0.05, 0.1)
    assert math.isfinite(total.item())
    assert parts["edge"].item() == 0.0 and parts["center"].item() == 0.0
    total.backward()
    assert torch.equal(edge.grad, torch.zeros(2))


def test_edge_loss_averages_over_labelled_samples_only():
    tgt = _targets([0, 0, 0], edge=[0.0, float("nan"), 1.0], edge_mask=[True, False, True])
    out = _outputs(torch.zeros(3, 10), edge=torch.tensor([0.2, 0.5, 0.9]))
    _, parts = grading_loss(out, tgt, 0.7, 0.05, 0.1)
    assert parts["edge"].item() == pytest.approx((0.2 ** 2 + 0.1 ** 2) / 2, rel=1e-5)


def test_masked_samples_do_not_affect_the_gradient():
    def grads(masked_target):
        edge = torch.tensor([0.2, 0.5, 0.9], requires_grad=True)
        cent = torch.full((3, 4), 0.4, requires_grad=True)
        tgt = _targets([0, 0, 0], edge=[0.0, masked_target, 1.0], edge_mask=[True, False, True],
                       centering=[[0.5] * 4, [masked_target] * 4, [0.6] * 4],
                       center_mask=[True, False, True])
        total, _ = grading_loss(_outputs(torch.zeros(3, 10), edge=edge, centering=cent), tgt, 0.7, 0.05, 0.1)
        total.backward()
        return total.detach(), edge.grad, cent.grad

    t1, e1, c1 = grads(float("nan"))
    t2, e2, c2 = grads(0.123)
    assert torch.equal(t1, t2) and torch.equal(e1, e2) and torch.equal(c1, c2)
    assert e1[1].item() == 0.0 and torch.all(c1[1] == 0)
    assert e1[0].item() != 0.0


def test_center_valid_masks_the_front_half_in_back_only_mode():
    cent = torch.tensor([[0.9, 0.9, 0.5, 0.5]], requires_grad=True)  # front half is a placeholder
    out = _outputs(torch.zeros(1, 10), centering=cent,
                   center_valid=torch.tensor([False, False, True, True]))
    tgt = _targets([0], centering=[[0.5, 0.5, 0.6, 0.5]], center_mask=[True])
    total, parts = grading_loss(out, tgt, 0.7, 0.05, 0.1)
    assert parts["center"].item() == pytest.approx(0.1 ** 2 / 2, rel=1e-5)  # mean over the 2 valid columns
    total.backward()
    assert torch.equal(cent.grad[0, :2], torch.zeros(2))


def test_loss_under_bf16_autocast_is_float32_and_close_to_fp32():
    torch.manual_seed(1)
    logits = torch.randn(4, 10).to(torch.bfloat16)
    tgt = _targets([0, 3, 6, 9])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, _ = grading_loss(_outputs(logits), tgt, 0.7, 0.05, 0.1)
    ref, _ = grading_loss(_outputs(logits.float()), tgt, 0.7, 0.05, 0.1)
    assert total.dtype == torch.float32
    assert total.item() == pytest.approx(ref.item(), rel=1e-6)


def test_grading_loss_module_binds_weights():
    out, tgt = _outputs(torch.zeros(2, 10)), _targets([2, 5])
    assert GradingLoss(0.3, 0.0, 0.0)(out, tgt)[0].item() == pytest.approx(
        grading_loss(out, tgt, 0.3, 0.0, 0.0)[0].item())


def test_grading_loss_module_rejects_alpha_outside_unit_interval():
    with pytest.raises(ValueError, match="alpha_emd=1.5"):
        GradingLoss(1.5)
