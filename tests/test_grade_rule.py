"""The rule from model outputs to a grade (core/grade_rule.py): the rounded mean of the grade distribution, pooled
with the distribution the criterion heads imply (the grade is the lowest criterion, docs/design.md §2)."""
import math

import pytest
import torch

from core.grade_rule import (CRITERIA_WEIGHT, criteria_implied, criteria_logits, expected_class, grade_logits,
                             grade_probabilities, predicted_grades, predicted_subgrades)


def _logits(probs: list[float]) -> torch.Tensor:
    return torch.tensor([probs]).log()


def test_the_grade_is_the_nearest_to_the_mean_not_the_median_or_the_mode():
    # Mode at grade 10 (0.45); the median is 8 (55 % of the mass at 8 or below); the mean is 7 x 0.3 +
    # 8 x 0.25 + 10 x 0.45 = 8.6, which reads as 9: between the two, where a miss by two costs the most.
    probs = torch.tensor([[0, 0, 0, 0, 0, 0, 0.3, 0.25, 0, 0.45]])
    assert int(expected_class(probs)[0]) + 1 == 9
    assert int(probs.argmax()) + 1 == 10
    assert int((probs.cumsum(1) < 0.5).sum()) + 1 == 8
    # Nearest, not truncated: a mean of 7.6 reads as 8, 7.4 as 7.
    assert int(expected_class(torch.tensor([[0.0] * 6 + [0.4, 0.6, 0, 0]]))[0]) + 1 == 8
    assert int(expected_class(torch.tensor([[0.0] * 6 + [0.6, 0.4, 0, 0]]))[0]) + 1 == 7
    # A distribution with one clear class gives that class; a batch is read row by row.
    assert (expected_class(torch.eye(10)) == torch.arange(10)).all()


def test_the_mean_never_runs_past_the_grades():
    over = torch.full((1, 10), 0.3)  # more mass than 1 (a mean of 13.5 grades): never an 11th class
    assert int(expected_class(over)[0]) == 9


def test_criteria_imply_the_distribution_of_their_minimum():
    # Centering surely 9, corners 7 or 10 (half each), edges and surface surely 10: the grade is 7 or 9.
    sub = torch.full((1, 4, 10), 1e-6)
    sub[0, 0, 8] = sub[0, 2, 9] = sub[0, 3, 9] = 1.0
    sub[0, 1, 6] = sub[0, 1, 9] = 0.5
    implied = criteria_implied(sub.log())
    assert implied.shape == (1, 10)
    assert implied[0, 6].item() == pytest.approx(0.5, abs=1e-4)
    assert implied[0, 8].item() == pytest.approx(0.5, abs=1e-4)
    assert implied.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_without_criterion_heads_the_grade_head_alone_decides():
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(grade_probabilities(logits), torch.softmax(logits, 1))
    assert torch.equal(predicted_grades({"logits": logits}), expected_class(torch.softmax(logits, 1)))


def test_the_pool_is_a_weighted_geometric_mean_of_both_views():
    head = torch.tensor([[0.05] * 8 + [0.3, 0.3]])      # the grade head: 9 or 10
    sub = torch.full((1, 4, 10), 1e-9)
    sub[:, :, 9] = 1.0
    sub[0, 1, 9], sub[0, 1, 7] = 1e-9, 1.0              # the criteria: corners are an 8, so the grade is 8
    pooled = grade_probabilities(head.log(), sub.log())
    implied = criteria_implied(sub.log()).clamp_min(1e-12)
    expected = head.pow(1 - CRITERIA_WEIGHT) * implied.pow(CRITERIA_WEIGHT)
    assert torch.allclose(pooled, expected / expected.sum(), atol=1e-6)
    assert pooled.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert int(predicted_grades({"logits": head.log(), "criteria": sub.log()})[0]) + 1 == 8


def test_subgrades_are_each_criterions_rounded_mean():
    sub = torch.zeros(2, 4, 10)
    sub[0, :, 9] = 5.0                                   # confident 10s
    sub[1, 2] = _logits([0, 0, 0, 0, 0.45, 0, 0, 0, 0, 0.55])[0].clamp_min(-30)  # edges: median 10, mean 7.75
    got = predicted_subgrades(sub) + 1
    assert got[0].tolist() == [10, 10, 10, 10]
    assert int(got[1, 2]) == 8 and not math.isnan(float(got.sum()))


def test_the_samplers_prior_is_taken_back_before_anything_is_read():
    # The head says 9 or 10 alike; the draw had made 9s four times as common, relative to 10s, as they are
    # among the cards (shift log 0.25 on the 9), so read with the shift the 10 is four times as likely.
    # Without a shift the logits are read as they are.
    head = _logits([1e-9] * 8 + [0.5, 0.5])
    shift = torch.zeros(10)
    shift[8] = math.log(0.25)
    plain = {"logits": head}
    shifted = {"logits": head, "grade_prior_shift": shift}
    assert torch.equal(grade_logits(plain), head)
    assert torch.allclose(grade_logits(shifted), head + shift)
    probs = grade_probabilities(grade_logits(shifted))
    assert probs[0, 8].item() == pytest.approx(0.2, abs=1e-6) and probs[0, 9].item() == pytest.approx(0.8, abs=1e-6)
    # Sub-grades: edges 8 or 9 alike reads 9 (8.5 half up); the draw made 9s as common as 8s where the cards
    # hold four 8s to each 9, so the edges read 8 (mean 8.2) and the grade, held by edges, with them.
    sub = torch.full((1, 4, 10), 1e-9)
    sub[:, :, 9] = 1.0
    sub[0, 2, 9], sub[0, 2, 7], sub[0, 2, 8] = 1e-9, 0.5, 0.5
    crit_shift = torch.zeros(4, 10)
    crit_shift[2, 8] = math.log(0.25)
    outputs = {"logits": _logits([1e-9] * 7 + [1 / 3] * 3), "criteria": sub.log()}
    assert int(predicted_subgrades(criteria_logits(outputs))[0, 2]) + 1 == 9
    assert int(predicted_grades(outputs)[0]) + 1 == 9
    outputs["criteria_prior_shift"] = crit_shift
    assert int(predicted_subgrades(criteria_logits(outputs))[0, 2]) + 1 == 8
    assert int(predicted_grades(outputs)[0]) + 1 == 8


def test_a_measured_centering_row_takes_no_prior_shift():
    # The measured row comes from the border shares through PSA's bands, not from a head trained on draws.
    sub = torch.zeros(1, 4, 10)
    shares = torch.tensor([[0.5, 0.5, 0.5, 0.5]])   # perfectly centred: a 10 by the bands
    shift = torch.full((4, 10), 0.0)
    shift[0, 9] = -40.0                              # would rule out a centering 10 if it were applied
    outputs = {"criteria": sub, "centering": shares, "centering_measured": True, "criteria_prior_shift": shift}
    assert int(predicted_subgrades(criteria_logits(outputs))[0, 0]) + 1 == 10
