"""core.metrics: QWK against scikit-learn, and the small metrics on a hand-worked case."""
import random

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from core import metrics

# A hand-worked case: 5 cards, true grades and predictions chosen so every number is easy to check.
TRUE = [10, 9, 9, 8, 3]
PRED = [10, 8, 9, 10, 3]


def _random_case(seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    # Some cases draw from a narrow band so several grades are missing from truth and/or predictions.
    lo, hi = (1, 10) if seed % 3 == 0 else (rng.randint(1, 6), rng.randint(6, 10))
    y_true = [rng.randint(lo, hi) for _ in range(n)]
    y_pred = [min(10, max(1, t + rng.choice([-2, -1, 0, 0, 0, 1, 3]))) for t in y_true]
    return y_true, y_pred


@pytest.mark.parametrize("seed", range(20))
def test_qwk_matches_sklearn_quadratic_kappa_on_fixed_label_set(seed):
    y_true, y_pred = _random_case(seed)
    expected = cohen_kappa_score(y_true, y_pred, weights="quadratic", labels=list(range(1, 11)))
    assert metrics.qwk(y_true, y_pred) == pytest.approx(expected, abs=1e-12)


def test_qwk_is_one_for_perfect_predictions():
    assert metrics.qwk([1, 5, 10, 7], [1, 5, 10, 7]) == pytest.approx(1.0)


def test_qwk_degenerate_single_grade_everywhere_is_one_not_nan():
    assert metrics.qwk([9, 9, 9], [9, 9, 9]) == 1.0


def test_qwk_accepts_numpy_and_torch_inputs():
    expected = metrics.qwk(TRUE, PRED)
    assert metrics.qwk(np.array(TRUE), np.array(PRED)) == pytest.approx(expected)
    assert metrics.qwk(torch.tensor(TRUE), torch.tensor(PRED)) == pytest.approx(expected)


def test_confusion_matrix_counts_true_rows_predicted_columns():
    cm = metrics.confusion_matrix(TRUE, PRED)
    assert len(cm) == 10 and all(len(r) == 10 for r in cm)
    assert cm[9][9] == 1  # 10 -> 10
    assert cm[8][7] == 1 and cm[8][8] == 1  # 9 -> 8, 9 -> 9
    assert cm[7][9] == 1  # 8 -> 10
    assert cm[2][2] == 1  # 3 -> 3
    assert sum(map(sum, cm)) == 5


def test_mae_accuracy_and_within_one_on_hand_case():
    # errors: 0, 1, 0, 2, 0
    assert metrics.mae(TRUE, PRED) == pytest.approx(3 / 5)
    assert metrics.accuracy(TRUE, PRED) == pytest.approx(3 / 5)
    assert metrics.within_one_accuracy(TRUE, PRED) == pytest.approx(4 / 5)


def test_per_grade_accuracy_is_none_for_absent_grades():
    acc = metrics.per_grade_accuracy(TRUE, PRED)
    assert acc[10] == 1.0 and acc[9] == 0.5 and acc[8] == 0.0 and acc[3] == 1.0
    assert acc[1] is None and acc[5] is None
    assert sorted(acc) == list(range(1, 11))


def test_grade_out_of_range_is_rejected_with_the_value():
    with pytest.raises(ValueError, match="y_pred.*11"):
        metrics.qwk([1, 2], [1, 11])


@pytest.mark.parametrize("seed", range(20))
def test_accuracy_macro_and_weighted_f1_match_sklearn(seed):
    y_true, y_pred = _random_case(seed)
    rep = metrics.grading_report(y_true, y_pred)
    assert rep["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert rep["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12)
    assert rep["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0),
                                               abs=1e-12)


def test_f1_on_the_hand_worked_case():
    # grade 10: TP 1, FP 1 -> 2/3; grade 9: TP 1, FN 1 -> 2/3; grade 8: FN 1 -> 0; grade 3: 1.
    macro, weighted = metrics.f1_scores(TRUE, PRED)
    assert macro == pytest.approx((2 / 3 + 2 / 3 + 0 + 1) / 4)
    assert weighted == pytest.approx((2 / 3 * 1 + 2 / 3 * 2 + 0 * 1 + 1 * 1) / 5)


def test_format_report_shows_accuracy_f1_and_the_inference_time_with_its_device():
    rep = metrics.grading_report(TRUE, PRED)
    rep["inference"] = {"device": "Test CPU (cpu, 2 threads)", "batch1_median_ms": 12.345, "batch1_p95_ms": 20.0,
                        "cards_per_s": 321.0, "batch_size": 128}
    lines = metrics.format_report(rep).splitlines()
    assert f"accuracy 0.6000   macro F1 {(2 / 3 + 2 / 3 + 1) / 4:.4f}   weighted F1 {(2 / 3 * 3 + 1) / 5:.4f}" in lines
    assert ("inference on Test CPU (cpu, 2 threads): 12.3 ms per card median, 20.0 ms p95 (batch 1); "
            "321.0 cards/s at batch 128") in lines


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same length"):
        metrics.mae([1, 2, 3], [1, 2])


def test_grading_report_has_json_ready_keys():
    rep = metrics.grading_report(TRUE, PRED)
    assert set(rep) == {"qwk", "mae", "accuracy", "macro_f1", "weighted_f1", "within_one", "per_grade_accuracy",
                        "confusion", "n"}
    assert rep["n"] == 5
    assert list(rep["per_grade_accuracy"]) == [str(g) for g in range(1, 11)]
    assert rep["confusion"] == metrics.confusion_matrix(TRUE, PRED)


def test_format_report_shows_headline_per_grade_and_aligned_confusion():
    text = metrics.format_report(metrics.grading_report(TRUE, PRED))
    assert "QWK" in text and "MAE" in text
    assert "grade  9:  50.0%  (n=2)" in text
    assert "grade  1:    -" in text
    matrix_rows = [ln for ln in text.splitlines() if ln.startswith("true\\pred") or ln[:9].strip().isdigit()]
    assert len(matrix_rows) == 11
    assert len({len(r) for r in matrix_rows}) == 1  # all rows the same width: columns line up
