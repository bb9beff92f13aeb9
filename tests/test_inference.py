"""core.inference: the one prediction path of core.predict and core.serve."""
from pathlib import Path

import pytest

from core.data import ImageError
from core.inference import load_model, predict_card, predict_cards
from tests.fixtures_core import export_random_model


def test_bytes_and_paths_grade_identically(tiny_model_dir, card_scans):
    model, config = load_model(tiny_model_dir)
    front, back = card_scans[0]
    from_paths = predict_card(model, config, front, back)
    from_bytes = predict_card(model, config, Path(front).read_bytes(), Path(back).read_bytes())
    assert from_paths == from_bytes
    assert set(from_paths) == {"grade", "expected_grade", "probabilities", "edge", "centering"}
    probs = from_paths["probabilities"]   # grades 1..10 in order, as the serving contract shows them
    assert len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=1e-3)
    # The grade is the expected grade rounded to the nearest grade (core/grade_rule.py).
    assert from_paths["grade"] == int(from_paths["expected_grade"] + 0.5)
    assert from_paths["expected_grade"] == pytest.approx(sum(g * q for g, q in enumerate(probs, 1)), abs=2e-3)


def test_a_batch_grades_each_card_as_alone(tiny_model_dir, card_scans):
    model, config = load_model(tiny_model_dir)
    batch = predict_cards(model, config, [{"front": f, "back": b} for f, b in card_scans])
    alone = [predict_card(model, config, f, b) for f, b in card_scans]
    assert [r["grade"] for r in batch] == [r["grade"] for r in alone]
    for got, want in zip(batch, alone):
        assert got["expected_grade"] == pytest.approx(want["expected_grade"], abs=1e-4)
    assert batch[0]["expected_grade"] != batch[1]["expected_grade"]  # different cards, different outputs


def test_back_only_model_needs_no_front(tmp_path, card_scans):
    model, config = load_model(export_random_model(tmp_path / "m", sides=("back",)))
    result = predict_card(model, config, None, card_scans[0][1])
    assert 1 <= result["grade"] <= 10


def test_missing_side_and_undecodable_bytes_name_the_problem(tiny_model_dir, card_scans):
    model, config = load_model(tiny_model_dir)
    with pytest.raises(ImageError, match="missing the front scan"):
        predict_card(model, config, None, card_scans[0][1])
    with pytest.raises(ImageError, match="cannot decode image"):
        predict_card(model, config, b"not a jpeg", card_scans[0][1])


def test_evaluation_and_prediction_grade_by_the_same_rule(tmp_path, card_scans):
    """core.evaluate (validation, test reports) and core.inference (predict, serve) turn a criterion
    model's outputs into the same grades, by core/grade_rule.py."""
    from core.evaluate import predict_records
    from core.records import CardRecord

    model, config = load_model(export_random_model(tmp_path / "m", criteria=True))
    records = [CardRecord(id=f"c{i}", front=f, back=b, grade=5) for i, (f, b) in enumerate(card_scans)]
    evaluated = predict_records(model, records, config["image_size"], ("front", "back")).tolist()
    predicted = [r["grade"] for r in predict_cards(model, config, [{"front": f, "back": b} for f, b in card_scans])]
    assert evaluated == predicted
    assert all("subgrades" in r for r in predict_cards(model, config, [{"front": card_scans[0][0],
                                                                         "back": card_scans[0][1]}]))
