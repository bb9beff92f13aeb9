"""The synthetic card generator: PSA caps, labels, determinism, splits.json, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.records import load_splits
from core.synth import (CardAttributes, caps, centering_cap, crease_cap, generate, grade_from_attributes,
                        severity_cap)
from core.synth import dataset
from core.synth.__main__ import main
from core.synth.sampling import sample_attributes, stratified_split

TINY = (40, 56)
REPO = Path(__file__).resolve().parents[1]


def pristine(**changes) -> CardAttributes:
    return CardAttributes(**{"front_lr": 0.5, "front_tb": 0.5, "back_lr": 0.5, "back_tb": 0.5, **changes})


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- PSA rules (docs/design.md §2) ------------------------------------------------------------------

@pytest.mark.parametrize("share, cap", [
    (0.55, 10), (0.45, 10), (0.5501, 9), (0.60, 9), (0.40, 9), (0.6001, 8), (0.65, 8), (0.6501, 7),
    (0.70, 7), (0.7001, 6), (0.80, 6), (0.8001, 5), (0.85, 5), (0.8501, 3), (0.90, 3), (0.10, 3), (0.9001, 1),
])
def test_front_centering_cap_follows_psa_bands_on_either_axis(share, cap):
    assert centering_cap(share, 0.5, 0.5, 0.5) == cap
    assert centering_cap(0.5, share, 0.5, 0.5) == cap


@pytest.mark.parametrize("share, cap", [
    (0.75, 10), (0.25, 10), (0.7501, 9), (0.90, 9), (0.10, 9), (0.9001, 1),
])
def test_back_centering_cap_follows_psa_bands_on_either_axis(share, cap):
    assert centering_cap(0.5, 0.5, share, 0.5) == cap
    assert centering_cap(0.5, 0.5, 0.5, share) == cap


def test_centering_cap_takes_the_worse_axis_and_the_worse_side():
    assert centering_cap(0.52, 0.68, 0.5, 0.5) == 7  # top/bottom is the worse axis
    assert centering_cap(0.58, 0.5, 0.80, 0.5) == 9  # front 9, back 9
    assert centering_cap(0.5, 0.5, 0.80, 0.5) == 9  # the back alone caps a perfect front
    assert centering_cap(0.62, 0.5, 0.80, 0.5) == 8  # front 8 is worse than back 9


def test_severity_cap_at_band_edges():
    assert [severity_cap(s) for s in (0.0, 0.05, 0.0501, 0.15, 0.25, 0.55, 0.87, 0.8701, 1.0)] == \
        [10, 10, 9, 9, 8, 5, 2, 1, 1]


def test_grade_is_the_minimum_of_the_caps():
    attrs = pristine(front_lr=0.58, corners=0.30, edges=0.10)  # centering 9, corners 7, edges 9
    assert caps(attrs) == {"centering": 9, "corners": 7, "edges": 9, "surface": 10}
    assert grade_from_attributes(attrs) == 7
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = CardAttributes(*rng.uniform(0.05, 0.95, 4), *rng.uniform(0, 1, 3), crease=float(rng.random() < 0.2))
        assert grade_from_attributes(a) == min(caps(a).values())


@pytest.mark.parametrize("crease", [0.01, 0.3, 0.55, 0.8, 1.0])
def test_any_crease_caps_the_grade_at_five_or_below(crease):
    assert crease_cap(crease) <= 5
    assert grade_from_attributes(pristine(crease=crease)) <= 5
    assert grade_from_attributes(pristine()) == 10


@pytest.mark.parametrize("target", range(1, 11))
def test_sampled_attributes_cap_the_card_at_the_target_grade(target):
    rng = np.random.default_rng(target)
    grades = {grade_from_attributes(sample_attributes(rng, target)) for _ in range(100)}
    assert grades == {target}


def test_split_is_stratified_by_grade():
    grades = [g for g in range(1, 11) for _ in range(10 * g)]  # 10..100 cards per grade
    parts = stratified_split(np.random.default_rng(0), grades, 0.1, 0.1)
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == list(range(len(grades)))
    for name in ("val", "test"):
        per_grade = Counter(grades[i] for i in parts[name])
        assert all(abs(per_grade[g] - g) <= 1 for g in range(1, 11)), per_grade


# --- the written set ---------------------------------------------------------------------------

def test_same_seed_gives_identical_splits_and_images(tmp_path):
    generate(tmp_path / "a", 8, seed=5, size=TINY)
    generate(tmp_path / "b", 8, seed=5, size=TINY)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_different_seed_gives_different_cards(tmp_path):
    generate(tmp_path / "a", 8, seed=5, size=TINY)
    generate(tmp_path / "b", 8, seed=6, size=TINY)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert a["img/c0001_front.jpg"] != b["img/c0001_front.jpg"]
    assert a["splits.json"] != b["splits.json"]


def test_splits_json_loads_and_every_image_exists(tmp_path):
    path = generate(tmp_path, 30, seed=0, size=TINY)
    splits = load_splits(str(path))  # checks every image too
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 3, 3)
    raw = json.loads(path.read_text())
    first = raw["train"][0]
    assert first["front"] == f"img/{first['id']}_front.jpg" and first["back"] == f"img/{first['id']}_back.jpg"
    for rec in splits.train + splits.val + splits.test:
        assert rec.edge is not None and 0.0 <= rec.edge <= 1.0
        assert rec.centering is not None


def test_grade_never_exceeds_the_recorded_centering_cap(tmp_path):
    path = generate(tmp_path, 30, seed=2, size=TINY)
    splits = load_splits(str(path))
    for rec in splits.train + splits.val + splits.test:
        assert rec.grade <= centering_cap(*rec.centering)


def test_interrupted_generation_leaves_no_splits_json(tmp_path, monkeypatch):
    generate(tmp_path, 5, seed=0, size=TINY)
    made = []

    def failing_make_card(seed, index, size):
        if len(made) == 3:
            raise KeyboardInterrupt
        made.append(index)
        return real(seed, index, size)

    real = dataset.make_card
    monkeypatch.setattr(dataset, "make_card", failing_make_card)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, 10, seed=0, size=TINY)
    assert not (tmp_path / "splits.json").exists()


@pytest.fixture(scope="module")
def big_set_grades(tmp_path_factory) -> Counter:
    path = generate(tmp_path_factory.mktemp("big"), 600, seed=0, size=TINY)
    raw = json.loads(path.read_text())
    return Counter(r["grade"] for name in ("train", "val", "test") for r in raw[name])


def test_grade_histogram_is_skewed_towards_high_grades(big_set_grades):
    n = sum(big_set_grades.values())
    assert sum(c for g, c in big_set_grades.items() if g >= 8) / n > 0.5
    assert sum(c for g, c in big_set_grades.items() if g <= 4) / n < 0.2


def test_every_grade_occurs_in_a_large_set(big_set_grades):
    assert set(big_set_grades) == set(range(1, 11))


# --- CLI -------------------------------------------------------------------------------------

def test_cli_writes_the_set_and_exits_zero(tmp_path):
    out = tmp_path / "set"
    proc = subprocess.run([sys.executable, "-m", "core.synth", "--out", str(out), "--n", "6", "--seed", "1",
                           "--size", "40x56", "--val", "0.2", "--test", "0.2"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 6 synthetic cards" in proc.stdout and "grades 1:" in proc.stdout
    assert len(list((out / "img").glob("*.jpg"))) == 12
    assert load_splits(str(out / "splits.json"))


@pytest.mark.parametrize("args, expected", [
    (["--size", "10"], "--size: '10' is not WIDTHxHEIGHT"),
    (["--size", "10x14"], "size=(10, 14)"),
    (["--n", "0"], "n=0"),
    (["--seed", "-1"], "seed=-1"),
    (["--val", "0.6", "--test", "0.5"], "leaves no training cards"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, args, expected):
    argv = ["--out", str(tmp_path), "--n", "5", "--size", "40x56", *args]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "splits.json").exists()


def test_importing_the_generator_does_not_load_torch():
    code = "import sys, core.synth; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr
