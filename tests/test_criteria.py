"""Criterion sub-grades (centering, corners, edges, surface): the optional splits.json field, the heads,
their masked loss, and what evaluate and predict report."""
from __future__ import annotations

import json

import pytest
import torch

from core.losses import grading_loss
from core.metrics import format_report, report_from_confusion
from core.model import DualBranchGrader
from core.inference import criterion_grades
from core.predict import format_prediction
from core.records import CRITERIA, SplitsError, load_splits, parse_record
from core.synth import generate

SMALL = "mobilenet_v3_small"


def _raw(**extra) -> dict:
    return {"id": "c1", "front": "/f.jpg", "back": "/b.jpg", "grade": 8, **extra}


def test_subgrades_are_optional_and_may_be_partial():
    assert parse_record(_raw(), "/s.json")[0].subgrades is None
    rec, problems = parse_record(_raw(subgrades={"corners": 8, "surface": 10}), "/s.json")
    assert not problems and rec.subgrades == (None, 8, None, 10)


@pytest.mark.parametrize("bad", [{"corners": 11}, {"corners": 8.5}, {"gloss": 9}, [8, 9], {"edges": True}])
def test_bad_subgrades_are_one_line_naming_the_record(bad):
    rec, problems = parse_record(_raw(subgrades=bad), "/s.json")
    assert rec is None and len(problems) == 1
    assert "record 'c1'" in problems[0] and "subgrades" in problems[0] and "\n" not in problems[0]


def test_the_generator_labels_every_card_and_the_grade_is_the_lowest_subgrade(tmp_path):
    splits = load_splits(str(generate(tmp_path / "set", 12, seed=3, size=(80, 112))))
    for r in splits.train + splits.val + splits.test:
        assert None not in r.subgrades and min(r.subgrades) == r.grade


def test_a_set_with_a_bad_subgrade_fails_before_training(tmp_path):
    path = generate(tmp_path / "set", 12, seed=3, size=(80, 112))
    doc = json.loads(path.read_text())
    doc["train"][0]["subgrades"]["edges"] = 0
    path.write_text(json.dumps(doc))
    with pytest.raises(SplitsError, match="subgrades must be an object with integer grades 1..10"):
        load_splits(str(path))


def _out(criteria: torch.Tensor) -> dict:
    b = len(criteria)
    return {"logits": torch.zeros(b, 10), "edge": torch.zeros(b), "centering": torch.full((b, 4), 0.5),
            "criteria": criteria}


def _tgt(subgrades) -> dict:
    b = len(subgrades)
    no = torch.zeros(b, dtype=torch.bool)
    return {"grade": torch.zeros(b, dtype=torch.long), "edge": torch.zeros(b), "edge_mask": no,
            "centering": torch.full((b, 4), 0.5), "center_mask": no, "subgrades": torch.tensor(subgrades)}


def test_unlabelled_subgrades_are_masked_out_of_the_loss():
    criteria = torch.randn(2, 4, 10, requires_grad=True)
    total, parts = grading_loss(_out(criteria), _tgt([[-1] * 4, [-1] * 4]), 0.7, 0.0, 0.0, beta_criteria=1.0)
    assert parts["criteria"].item() == 0.0
    total.backward()
    assert criteria.grad.abs().sum() == 0
    # One labelled entry: the term is that entry's loss alone, whatever the other logits say.
    labelled = torch.zeros(2, 4, 10)
    labelled[0, 1, 7] = 5.0
    noisy = labelled.clone()
    noisy[1] = torch.randn(4, 10)
    noisy[0, 0] = torch.randn(10)
    a = grading_loss(_out(labelled), _tgt([[-1, 7, -1, -1], [-1] * 4]), 0.7, 0.0, 0.0, 1.0)[1]["criteria"]
    b = grading_loss(_out(noisy), _tgt([[-1, 7, -1, -1], [-1] * 4]), 0.7, 0.0, 0.0, 1.0)[1]["criteria"]
    assert a.item() == pytest.approx(b.item()) and a.item() > 0


def test_heads_predict_four_subgrade_distributions_and_old_exports_still_load():
    torch.manual_seed(0)
    model = DualBranchGrader(SMALL, criteria=True).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        assert model(x, x)["criteria"].shape == (2, 4, 10)
        assert model(x)["criteria"].shape == (2, 4, 10)  # phase 1: the back branch alone
    old_config = {k: v for k, v in DualBranchGrader(SMALL).config().items() if k != "criteria"}
    old = DualBranchGrader.from_config(old_config)
    old.load_state_dict(DualBranchGrader(SMALL).state_dict())  # an export made before the heads existed
    assert "criteria" not in old.eval()(x, x)


def test_the_lowest_subgrade_is_what_holds_the_grade_back():
    logits = torch.zeros(4, 10)
    for i, grade in enumerate((9, 8, 9, 10)):
        logits[i, grade - 1] = 5.0
    got = criterion_grades(torch.softmax(logits, dim=-1))
    assert got == {"subgrades": dict(zip(CRITERIA, (9, 8, 9, 10))), "held_back_by": ["corners"]}
    text = format_prediction({"grade": 8, "expected_grade": 8.1, "probabilities": [0.1] * 10,
                              "edge": 0.2, "centering": {"front": [0.5, 0.5], "back": [0.5, 0.5]}, **got})
    assert text.splitlines()[0].startswith("PSA grade: 8, held back by corners")
    assert "sub-grades: centering 9, corners 8, edges 9, surface 10" in text
    perfect = torch.zeros(4, 10)
    perfect[:, 9] = 5.0
    assert criterion_grades(torch.softmax(perfect, dim=-1))["held_back_by"] == []


def test_report_has_a_per_criterion_accuracy_table():
    grade = torch.zeros(10, 10)
    grade[7, 7] = 3
    criteria = torch.zeros(4, 10, 10)
    criteria[1, 7, 7], criteria[1, 7, 6] = 3, 1  # corners: 3 of 4 exact, all within one
    report = report_from_confusion(grade.long().numpy(), criteria.long().numpy())
    assert report["criteria"] == {"corners": {"accuracy": 0.75, "within_one": 1.0, "mae": 0.25, "n": 4}}
    assert "corners" in format_report(report) and "criterion sub-grades" in format_report(report)
