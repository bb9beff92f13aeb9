"""core.sampling: each rank's epoch order as a pure function of (seed, epoch, rank)."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from core.sampling import grade_weights, sampler_prior_shift, shard_indices, shuffled_indices, weighted_indices

SKEWED = [1] * 10 + [5] * 40 + [10] * 250


def test_ranks_draw_disjoint_shares_of_one_global_weighted_draw():
    weights = grade_weights(SKEWED)
    shares = [weighted_indices(weights, 7, 0, rank=r, world_size=3) for r in range(3)]
    whole = weighted_indices(weights, 7, 0)
    assert [len(s) for s in shares] == [100, 100, 100]
    assert [shares[i % 3][i // 3] for i in range(300)] == whole


def test_same_arguments_give_the_same_draw_and_other_epochs_differ():
    weights = grade_weights(SKEWED)
    assert weighted_indices(weights, 3, 4, 1, 2) == weighted_indices(weights, 3, 4, 1, 2)
    assert weighted_indices(weights, 3, 0) != weighted_indices(weights, 3, 1)


def test_seed_and_epoch_enter_as_their_sum():
    # The trainer passes seed = run seed * 1000 + phase * 100, so epochs never collide across phases.
    weights = grade_weights(SKEWED)
    assert weighted_indices(weights, 100, 5) == weighted_indices(weights, 105, 0)


def test_grade_shares_follow_inverse_sqrt_frequency_weights():
    drawn = Counter(SKEWED[i] for i in weighted_indices(grade_weights(SKEWED, 0.5), 0, 0, num_samples=20_000))
    counts = Counter(SKEWED)
    # P(record) ∝ 1/sqrt(n_grade)  =>  share(grade) ∝ n_grade / sqrt(n_grade) = sqrt(n_grade)
    norm = sum(n ** 0.5 for n in counts.values())
    for grade, n in counts.items():
        assert drawn[grade] / 20_000 == pytest.approx(n ** 0.5 / norm, abs=0.015)


def test_grade_weights_are_inverse_power_of_grade_frequency():
    assert grade_weights([9, 9, 9, 9, 2], power=0.5) == [0.5, 0.5, 0.5, 0.5, 1.0]
    assert grade_weights([9, 9, 2], power=1.0) == [0.5, 0.5, 1.0]


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        weighted_indices([1.0, -1.0], 0, 0)
    with pytest.raises(ValueError, match="exceeds the 2 records"):
        weighted_indices([1.0, 1.0, 0.0], 0, 0, rank=0, world_size=2, num_samples=2, replacement=False)
    with pytest.raises(ValueError, match="rank 2 / world_size 2"):
        shard_indices(4, rank=2, world_size=2)


def test_without_replacement_ranks_share_no_index():
    shares = [set(weighted_indices([1.0] * 20, 1, 0, r, 2, num_samples=10, replacement=False)) for r in range(2)]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 20


def test_shards_cover_every_item_once_without_padding():
    assert [shard_indices(10, r, 3) for r in range(3)] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_shuffled_shards_partition_one_seeded_permutation():
    drawn = [shuffled_indices(11, 5, 3, r, 2) for r in range(2)]
    assert sorted(drawn[0] + drawn[1]) == list(range(11))
    assert drawn[0] != list(range(0, 11, 2))


def test_eval_indices_are_the_shard_or_a_fixed_prefix_of_a_shuffle():
    from core.sampling import eval_indices

    assert [eval_indices(10, 3, r, 3) for r in range(3)] == [shard_indices(10, r, 3) for r in range(3)]
    prefix = [eval_indices(40, 3, r, 2, limit=6) for r in range(2)]
    assert prefix == [shuffled_indices(40, 3, 0, r, 2)[:6] for r in range(2)]
    assert prefix == [eval_indices(40, 3, r, 2, limit=6) for r in range(2)]   # the same batches every epoch
    assert not set(prefix[0]) & set(prefix[1])                                # ranks recompute on their own cards


def test_prior_shift_is_the_log_of_each_labels_share_among_the_cards_over_its_share_among_the_draws():
    counts = Counter(SKEWED)                     # grades 1, 5, 10: 10, 40 and 250 cards
    grade, criteria = sampler_prior_shift(SKEWED, [None] * len(SKEWED), 0.5)
    drawn = {g: n ** 0.5 / sum(m ** 0.5 for m in counts.values()) for g, n in counts.items()}
    for g, n in counts.items():
        assert grade[g - 1].item() == pytest.approx(math.log((n / 300) / drawn[g]), rel=1e-5)
    assert grade[0] < 0 < grade[9]               # the draw inflates the rare 1s and deflates the common 10s
    assert grade[[1, 2, 3, 5, 6, 7, 8]].abs().sum() == 0   # grades no card has: nothing to take back
    assert torch.equal(criteria, torch.zeros(4, 10))       # no card has sub-grades


def test_prior_shift_turns_the_draws_prior_back_into_the_cards_prior():
    # A head that learned nothing but the draw's prior outputs log(share among the draws); shifted, it reads
    # each grade with its share among the cards, which is what an uninformed reader should say.
    grade, _ = sampler_prior_shift(SKEWED, [None] * len(SKEWED), 0.5)
    drawn = torch.zeros(10)
    for i in weighted_indices(grade_weights(SKEWED), 0, 0, num_samples=200_000):
        drawn[SKEWED[i] - 1] += 1
    read = torch.softmax(drawn.clamp_min(1e-9).log() + grade, 0)
    assert read[[0, 4, 9]].tolist() == pytest.approx([10 / 300, 40 / 300, 250 / 300], abs=0.004)


def test_sub_grade_shifts_count_only_labelled_cards_and_follow_the_grade_weights():
    grades = [2] * 10 + [10] * 90
    # Corners: a 2 wherever the grade is 2, else a 10; centering unlabelled on the 2s; edges never labelled.
    subs = [(None, 2, None, 10)] * 10 + [(9, 10, None, 10)] * 90
    grade, criteria = sampler_prior_shift(grades, subs, 1.0)   # power 1: both grades drawn alike
    assert torch.allclose(criteria[1], grade)                  # corners move exactly as the grade does
    assert criteria[1][1].item() == pytest.approx(math.log(0.1 / 0.5), rel=1e-5)
    assert torch.equal(criteria[0], torch.zeros(10))           # centering: only 9s labelled, drawn as often as kept
    assert torch.equal(criteria[2], torch.zeros(10))           # edges: no labels, no shift
    assert torch.equal(criteria[3], torch.zeros(10))           # surface: every card a 10
    assert torch.equal(sampler_prior_shift(grades, subs, 0.0)[0], torch.zeros(10))  # power 0: a plain shuffle
