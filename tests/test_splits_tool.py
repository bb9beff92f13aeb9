"""`python -m core.splits build|check|stats`: a user's scans -> splits.json, its checks and its stats."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from core.records import load_splits
from core.splits import (
    Columns, SplitsInputError, build_splits, check_splits, render_stats, sampler_class_weights, splits_stats,
)
from core.splits.__main__ import main
from core.splits.build import stratum_sizes

REPO = Path(__file__).resolve().parents[1]


def card_image(path: Path, seed: int, size=(100, 140)) -> Path:
    """A small JPEG with random shapes: decodes, is not blank, and differs from every other seed."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        draw.rectangle([x0, y0, x0 + size[0] // 3, y0 + size[1] // 3], fill=tuple(rng.randrange(256) for _ in range(3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=85)
    return path


def scans_and_csv(tmp_path: Path, grades: list[int], header="id,front,back,grade", ids=None) -> tuple[Path, Path]:
    scans = tmp_path / "scans"
    lines = [header]
    for i, grade in enumerate(grades):
        cid = ids[i] if ids else f"c{i:03d}"
        card_image(scans / f"{cid}_{i}_front.jpg", 2 * i)
        card_image(scans / f"{cid}_{i}_back.jpg", 2 * i + 1)
        lines.append(f"{cid},{cid}_{i}_front.jpg,{cid}_{i}_back.jpg,{grade}")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    return scans, csv_path


def good_record(tmp_path: Path, cid: str, grade: int = 9, seed: int | None = None) -> dict:
    seed = seed if seed is not None else sum(map(ord, cid)) * 7
    front = card_image(tmp_path / "img" / f"{cid}_front.jpg", seed)
    back = card_image(tmp_path / "img" / f"{cid}_back.jpg", seed + 1)
    return {"id": cid, "front": str(front.relative_to(tmp_path)), "back": str(back.relative_to(tmp_path)),
            "grade": grade}


def write_splits(tmp_path: Path, train, val=None, test=None, **extra) -> str:
    """A splits.json with 10 clean grade-9 cards (8/1/1) plus the given records."""
    base = [good_record(tmp_path, f"ok{i}") for i in range(10)]
    data = {"version": 1, "train": base[:8] + list(train), "val": base[8:9] + list(val or []),
            "test": base[9:] + list(test or []), **extra}
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(data))
    return str(path)


def check(path: str, name: str) -> dict:
    return check_splits(path)["checks"][name]


# --- checks: a clean file passes, and each check catches its own problem -------------------------

def test_clean_file_has_no_problems(tmp_path):
    report = check_splits(write_splits(tmp_path, []))
    assert report["problems"] == 0, report["checks"]


def test_check_reads_files_the_trainer_rejects(tmp_path):
    path = write_splits(tmp_path, [{**good_record(tmp_path, "bad"), "grade": 11}])
    with pytest.raises(Exception):
        load_splits(path)
    assert check(path, "grades")["count"] == 1


def test_structure_check_reports_missing_split_and_keys(tmp_path):
    path = tmp_path / "splits.json"
    rec = good_record(tmp_path, "x")
    del rec["grade"]
    path.write_text(json.dumps({"train": [rec, 7], "test": []}))
    result = check(str(path), "structure")
    assert result["count"] == 4
    assert any("missing split 'val'" in e for e in result["examples"])
    assert any("split 'test' is empty" in e for e in result["examples"])
    assert any("train[1] is not an object" in e for e in result["examples"])


def test_one_side_check_flags_record_without_back(tmp_path):
    rec = good_record(tmp_path, "lonely")
    del rec["back"]
    result = check(write_splits(tmp_path, [rec]), "one_side")
    assert result["count"] == 1 and result["examples"] == ["lonely: no back"]


def test_grade_check_flags_out_of_range_and_non_integer(tmp_path):
    bad = [{**good_record(tmp_path, f"g{i}"), "grade": g} for i, g in enumerate([0, 11, 8.5, "9", True])]
    result = check(write_splits(tmp_path, bad), "grades")
    assert result["count"] == 5


def test_aux_label_check_flags_edge_out_of_range(tmp_path):
    rec = {**good_record(tmp_path, "e"), "edge": 1.5}
    result = check(write_splits(tmp_path, [rec]), "aux_labels")
    assert result["count"] == 1 and "edge 1.5" in result["examples"][0]


def test_duplicate_id_check(tmp_path):
    a, b = good_record(tmp_path, "twin", seed=1), good_record(tmp_path, "twin2", seed=3)
    result = check(write_splits(tmp_path, [a, {**b, "id": "twin"}]), "duplicate_ids")
    assert result["count"] == 1 and result["examples"] == ["twin (train, train)"]


def test_card_in_two_splits_check_follows_group(tmp_path):
    a = {**good_record(tmp_path, "c1", seed=1), "group": "c1"}
    b = {**good_record(tmp_path, "c1#2", seed=3), "group": "c1"}
    result = check(write_splits(tmp_path, [a], test=[b]), "card_in_two_splits")
    assert result["count"] == 1 and result["examples"] == ["c1 (train, test)"]


def test_missing_image_check(tmp_path):
    rec = {**good_record(tmp_path, "m"), "back": "img/nowhere.jpg"}
    result = check(write_splits(tmp_path, [rec]), "missing_images")
    assert result["count"] == 1 and result["examples"][0].startswith("m back: ")


def test_unreadable_image_check_decodes_truncated_jpeg(tmp_path):
    rec = good_record(tmp_path, "trunc")
    front = tmp_path / rec["front"]
    front.write_bytes(front.read_bytes()[: front.stat().st_size // 2])  # header intact: open() alone passes
    (tmp_path / "img" / "text.jpg").write_text("not an image")
    other = {**good_record(tmp_path, "txt"), "back": "img/text.jpg"}
    result = check(write_splits(tmp_path, [rec, other]), "unreadable_images")
    assert result["count"] == 2


def test_shared_image_check_uses_content_hash(tmp_path):
    a, b = good_record(tmp_path, "a"), good_record(tmp_path, "b")
    copy = tmp_path / "img" / "copy_of_a_front.jpg"
    copy.write_bytes((tmp_path / a["front"]).read_bytes())
    result = check(write_splits(tmp_path, [a, {**b, "front": "img/copy_of_a_front.jpg"}]), "shared_images")
    assert result["count"] == 1 and result["examples"][0].startswith("a front = b front")


def test_tiny_or_blank_check(tmp_path):
    tiny = {**good_record(tmp_path, "t"), "front": str(card_image(tmp_path / "img/tiny.jpg", 5, (30, 42)))}
    Image.new("RGB", (100, 140), "white").save(tmp_path / "img/blank.jpg")
    blank = {**good_record(tmp_path, "w"), "back": "img/blank.jpg"}
    result = check(write_splits(tmp_path, [tiny, blank]), "tiny_or_blank_images")
    assert result["count"] == 2
    assert result["examples"][0] == "t front: 30x42 px" and "nearly uniform" in result["examples"][1]


def test_aspect_check_flags_strips_but_not_landscape_scans(tmp_path):
    strip = {**good_record(tmp_path, "s"), "front": str(card_image(tmp_path / "img/strip.jpg", 5, (100, 400)))}
    landscape = {**good_record(tmp_path, "l"), "front": str(card_image(tmp_path / "img/land.jpg", 6, (140, 100)))}
    result = check(write_splits(tmp_path, [strip, landscape]), "aspect_ratio")
    assert result["count"] == 1 and result["examples"][0].startswith("s front: 100x400")


def test_rare_grade_check_uses_split_fractions(tmp_path):
    path = write_splits(tmp_path, [good_record(tmp_path, f"r{i}", grade=3) for i in range(2)])
    asked = check_splits(path, fractions=[0.1, 0.1])["checks"]["rare_grades"]
    assert asked["examples"] == ["grade 3: 2 cards"]  # 10% val/test: a grade needs 10 cards
    own = check(path, "rare_grades")  # the file's own shares: val 1 of 12 cards, so 12 are needed
    assert own["examples"] == ["grade 3: 2 cards", "grade 9: 10 cards"]


# --- build: stratified, grouped split ----------------------------------------------------------
# These tests are about the split itself; their inputs have rare grades or made-up image paths, so they
# pass allow_problems=True. What build does when checks fail is tested under "build refuses" below.

def test_every_grade_in_every_split_when_counts_allow(tmp_path):
    scans, csv_path = scans_and_csv(tmp_path, [g for g in range(1, 11) for _ in range(4)])
    out = tmp_path / "data" / "splits.json"
    build_splits(str(out), csv_path=str(csv_path), images=str(scans), val=0.1, test=0.1, seed=1,
                 allow_problems=True)
    splits = load_splits(str(out))
    for name in ("train", "val", "test"):
        assert {r.grade for r in splits.split(name)} == set(range(1, 11)), name


def test_no_id_in_two_splits(tmp_path):
    scans, csv_path = scans_and_csv(tmp_path, [9, 8, 10, 9, 9, 8, 7, 10, 9, 8] * 3)
    out = tmp_path / "splits.json"
    build_splits(str(out), csv_path=str(csv_path), images=str(scans), allow_problems=True)
    data = json.loads(out.read_text())
    ids = [r["id"] for name in ("train", "val", "test") for r in data[name]]
    assert len(ids) == len(set(ids)) == 30


def test_copies_of_one_id_stay_in_one_split(tmp_path):
    ids = [f"card{i // 3}" for i in range(30)]  # ten cards, three scanned copies each
    scans, csv_path = scans_and_csv(tmp_path, [9 if i % 2 else 10 for i in range(30)], ids=ids)
    out = tmp_path / "splits.json"
    build_splits(str(out), csv_path=str(csv_path), images=str(scans), val=0.2, test=0.2, seed=3,
                 allow_problems=True)
    data = json.loads(out.read_text())
    split_of: dict[str, set] = {}
    for name in ("train", "val", "test"):
        for r in data[name]:
            split_of.setdefault(r["group"], set()).add(name)
    assert len(split_of) == 10 and all(len(s) == 1 for s in split_of.values())
    assert len(load_splits(str(out)).train) % 3 == 0  # distinct ids: the trainer's reader accepts it


def test_split_sizes_follow_fractions(tmp_path):
    rows = ["id,front,back,grade"] + [f"c{i},a{i}.jpg,b{i}.jpg,{1 + i % 10}" for i in range(400)]
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    summary = build_splits(str(tmp_path / "s.json"), csv_path=str(tmp_path / "labels.csv"), val=0.2, test=0.1,
                           allow_problems=True)
    assert summary["records"] == {"train": 280, "val": 80, "test": 40}


def test_same_seed_same_split_other_seed_differs(tmp_path):
    rows = ["id,front,back,grade"] + [f"c{i},a{i}.jpg,b{i}.jpg,{1 + i % 10}" for i in range(100)]
    (tmp_path / "labels.csv").write_text("\n".join(rows))

    def val_ids(seed, name):
        build_splits(str(tmp_path / name), csv_path=str(tmp_path / "labels.csv"), seed=seed, allow_problems=True)
        return [r["id"] for r in json.loads((tmp_path / name).read_text())["val"]]

    assert val_ids(5, "a.json") == val_ids(5, "b.json") != val_ids(6, "c.json")


def test_stratum_sizes_keep_train_and_cover_small_grades():
    assert stratum_sizes(3, 0.1, 0.1) == (1, 1)
    assert stratum_sizes(2, 0.1, 0.1) == (0, 0)
    assert stratum_sizes(100, 0.1, 0.2) == (10, 20)
    assert stratum_sizes(3, 0.0, 0.1) == (0, 1)


def test_image_paths_are_relative_to_splits_dir(tmp_path):
    scans, csv_path = scans_and_csv(tmp_path, [9, 10])
    out = tmp_path / "data" / "mine" / "splits.json"
    build_splits(str(out), csv_path=str(csv_path), images=str(scans), val=0, test=0, allow_problems=True)
    rec = json.loads(out.read_text())["train"][0]
    assert rec["front"] == "../../scans/c000_0_front.jpg"
    assert Path(load_splits(str(out), required=("train",)).train[0].front).is_file()


# --- build: inputs -----------------------------------------------------------------------------

def test_configurable_column_names(tmp_path):
    scans, csv_path = scans_and_csv(tmp_path, [9, 10, 8], header="card_id,img_f,img_b,psa")
    out = tmp_path / "splits.json"
    cols = Columns(id="card_id", front="img_f", back="img_b", grade="psa")
    build_splits(str(out), csv_path=str(csv_path), images=str(scans), columns=cols, val=0, test=0, allow_problems=True)
    data = json.loads(out.read_text())
    assert sorted(r["grade"] for r in data["train"]) == [8, 9, 10]


def test_optional_label_columns_are_written(tmp_path):
    card_image(tmp_path / "f.jpg", 1), card_image(tmp_path / "b.jpg", 2)
    (tmp_path / "labels.csv").write_text(
        "id,front,back,grade,edge,centering_front_lr,centering_front_tb,centering_back_lr,centering_back_tb\n"
        "c1,f.jpg,b.jpg,9,0.25,0.55,0.5,0.6,0.52\n")
    out = tmp_path / "splits.json"
    build_splits(str(out), csv_path=str(tmp_path / "labels.csv"), val=0, test=0, allow_problems=True)
    rec = json.loads(out.read_text())["train"][0]
    assert rec["edge"] == 0.25 and rec["centering"] == {"front": [0.55, 0.5], "back": [0.6, 0.52]}


def test_folder_layout_reads_grade_folders_and_pairs_sides(tmp_path):
    scans = tmp_path / "scans"
    for grade, cid, seed in ((10, "a", 1), (9, "b", 3), (9, "c", 5)):
        card_image(scans / str(grade) / f"{cid}_front.jpg", seed)
        card_image(scans / str(grade) / f"{cid}_back.jpg", seed + 1)
    card_image(scans / "8" / "lonely_front.png", 9)
    (scans / "9" / "notes.txt").write_text("x")
    out = tmp_path / "splits.json"
    summary = build_splits(str(out), images=str(scans), layout="folders", val=0, test=0, allow_problems=True)
    recs = {r["id"]: r for r in json.loads(out.read_text())["train"]}
    assert {k: r["grade"] for k, r in recs.items()} == {"a": 10, "b": 9, "c": 9, "lonely": 8}
    assert recs["b"]["front"] == "scans/9/b_front.jpg" and "back" not in recs["lonely"]
    assert summary["ignored"] == ["9/notes.txt"]
    assert check_splits(str(out))["checks"]["one_side"]["count"] == 1


def test_missing_csv_column_is_named(tmp_path):
    (tmp_path / "labels.csv").write_text("id,front,back,psa\nc1,f.jpg,b.jpg,9\n")
    with pytest.raises(SplitsInputError, match=r"labels.csv: missing column 'grade'.*--col-grade"):
        build_splits(str(tmp_path / "s.json"), csv_path=str(tmp_path / "labels.csv"))


# --- stats -------------------------------------------------------------------------------------

def test_sampler_class_weights_are_sqrt_inverse_frequency_mass():
    weights = sampler_class_weights({9: 100, 1: 1})
    assert weights == pytest.approx({1: 1 / 11, 9: 10 / 11})
    assert sampler_class_weights({9: 100, 1: 1}, power=0.0) == pytest.approx({1: 1 / 101, 9: 100 / 101})
    assert sampler_class_weights({9: 100, 1: 1, 5: 0}, power=1.0) == pytest.approx({1: 0.5, 9: 0.5})


def test_stats_histogram_sizes_and_aux_shares(tmp_path):
    landscape = {**good_record(tmp_path, "l", grade=3), "edge": 0.1,
                 "front": str(card_image(tmp_path / "img/l.jpg", 4, (140, 100)))}
    stats = splits_stats(write_splits(tmp_path, [landscape]))
    assert stats["grades"]["train"]["9"] == 8 and stats["grades"]["train"]["3"] == 1
    assert stats["image_sizes"]["common"][0] == ["100x140", 21]
    assert stats["aux_labels"]["train"]["edge"] == pytest.approx(1 / 9)
    assert stats["sampler"]["weights"]["3"] == pytest.approx(1 / (1 + 8 ** 0.5))
    assert 1 in stats["absent_grades"] and 3 not in stats["absent_grades"]


def test_stats_text_shows_a_bar_per_grade(tmp_path):
    text = render_stats(splits_stats(write_splits(tmp_path, [])))
    assert "   9 | " + "#" * 30 + " 8" in text and "   1 |" in text


# --- CLI ---------------------------------------------------------------------------------------

def test_build_writes_splits_and_report(tmp_path, capsys):
    scans, csv_path = scans_and_csv(tmp_path, [9, 10] * 6)
    out = tmp_path / "mine" / "splits.json"
    args = ["build", "--csv", str(csv_path), "--images", str(scans), "--out", str(out), "--val", "0.2", "--test", "0.2"]
    assert main(args) == 0
    report = json.loads((tmp_path / "mine" / "splits_report.json").read_text())
    assert set(report) >= {"checks", "stats", "problems"} and report["stats"]["records"]["total"] == 12
    assert report["problems"] == 0 and report["written"] is True
    assert load_splits(str(out)).train
    shown = capsys.readouterr().out
    assert "wrote " in shown and "ok    missing_images" in shown and "sampler" in shown


# --- build and check refuse: failing checks exit 1, name the records, and keep the report ----------

def labels_with_problems(tmp_path: Path) -> tuple[Path, Path]:
    """A CSV of 12 good cards (6 grade 9, 6 grade 10) plus one graded 11, one with a missing back and one
    with a truncated front."""
    scans, csv_path = scans_and_csv(tmp_path, [9, 10] * 6)
    card_image(scans / "g11_front.jpg", 101), card_image(scans / "g11_back.jpg", 102)
    card_image(scans / "nob_front.jpg", 103)
    trunc = card_image(scans / "trunc_front.jpg", 105)
    card_image(scans / "trunc_back.jpg", 106)
    trunc.write_bytes(trunc.read_bytes()[: trunc.stat().st_size // 2])
    with csv_path.open("a") as f:
        f.write("g11,g11_front.jpg,g11_back.jpg,11\n"
                "nob,nob_front.jpg,nob_back.jpg,9\n"
                "trunc,trunc_front.jpg,trunc_back.jpg,10\n")
    return scans, csv_path


BUILD_FRACTIONS = ["--val", "0.2", "--test", "0.2"]  # 6+ cards a grade: rare_grades stays quiet


def test_build_with_failing_checks_exits_1_and_does_not_write(tmp_path, capsys):
    scans, csv_path = labels_with_problems(tmp_path)
    out = tmp_path / "mine" / "splits.json"
    code = main(["build", "--csv", str(csv_path), "--images", str(scans), "--out", str(out), *BUILD_FRACTIONS])
    assert code == 1 and not out.exists()
    captured = capsys.readouterr()
    assert "FAIL  grades: 1 " in captured.out and "g11: 11" in captured.out
    assert "FAIL  missing_images: 1 " in captured.out and "nob back: " in captured.out
    assert "FAIL  unreadable_images: 1 " in captured.out and "trunc front: " in captured.out
    assert "not written: 3 problem(s)" in captured.err and "--allow-problems" in captured.err
    assert "wrote " not in captured.out
    report = json.loads((tmp_path / "mine" / "splits_report.json").read_text())  # still written
    assert report["written"] is False and report["problems"] == 3
    assert report["checks"]["grades"]["offenders"] == ["g11: 11"]
    assert report["checks"]["missing_images"]["offenders"][0].startswith("nob back: ")


def test_build_refusal_leaves_an_existing_splits_json_alone(tmp_path):
    scans, csv_path = labels_with_problems(tmp_path)
    out = tmp_path / "splits.json"
    out.write_text('{"version": 1, "train": [], "val": [], "test": []}\n')
    before = out.read_bytes()
    assert main(["build", "--csv", str(csv_path), "--images", str(scans), "--out", str(out), "--no-report"]) == 1
    assert out.read_bytes() == before


def test_build_allow_problems_writes_anyway_and_exits_0(tmp_path, capsys):
    scans, csv_path = labels_with_problems(tmp_path)
    out = tmp_path / "splits.json"
    args = ["build", "--csv", str(csv_path), "--images", str(scans), "--out", str(out), *BUILD_FRACTIONS]
    assert main([*args, "--allow-problems"]) == 0
    assert f"wrote {out} despite 3 problem(s) (--allow-problems): 15 rows" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert sum(len(data[s]) for s in ("train", "val", "test")) == 15
    assert json.loads((tmp_path / "splits_report.json").read_text())["written"] is True


def test_check_exits_1_on_problems_unless_allowed(tmp_path, capsys):
    rec = {**good_record(tmp_path, "m"), "back": "img/nowhere.jpg"}
    path = write_splits(tmp_path, [rec])
    assert main(["check", path]) == 1
    assert "FAIL  missing_images: 1 " in capsys.readouterr().out
    assert (tmp_path / "splits_report.json").is_file()  # the report is written on failure too
    assert main(["check", path, "--allow-problems", "--no-report"]) == 0
    assert main(["check", path, "--strict", "--no-report"]) == 1  # the old flag still works
    assert main(["stats", path, "--no-report"]) == 0  # stats describes; it fails only with --strict
    assert main(["stats", path, "--strict", "--no-report"]) == 1
    (tmp_path / "clean").mkdir()
    clean = write_splits(tmp_path / "clean", [])
    assert main(["check", clean, "--no-report"]) == 0


def test_report_names_every_failing_record_text_shows_first_five(tmp_path, capsys):
    missing = [{**good_record(tmp_path, f"m{i}"), "back": f"img/gone{i}.jpg"} for i in range(7)]
    path = write_splits(tmp_path, missing)
    assert main(["check", path]) == 1
    offenders = json.loads((tmp_path / "splits_report.json").read_text())["checks"]["missing_images"]["offenders"]
    assert [o.split()[0] for o in offenders] == [f"m{i}" for i in range(7)]
    assert "... and 2 more" in capsys.readouterr().out


def test_repeated_csv_id_is_a_problem_that_says_how_it_was_treated(tmp_path, capsys):
    scans, csv_path = scans_and_csv(tmp_path, [9, 10] * 6 + [9], ids=[f"c{i:03d}" for i in range(12)] + ["c004"])
    out = tmp_path / "splits.json"
    args = ["build", "--csv", str(csv_path), "--images", str(scans), "--out", str(out), *BUILD_FRACTIONS]
    assert main(args) == 1 and not out.exists()
    check_ = json.loads((tmp_path / "splits_report.json").read_text())["checks"]["repeated_input_ids"]
    assert check_["count"] == 1
    assert "scanned twice, or a typo" in check_["title"]
    assert check_["offenders"][0].startswith("c004: labels.csv line 6, labels.csv line 14 -> kept as c004, c004#2 in ")
    assert check_["offenders"][0].endswith("(group c004)")
    assert "FAIL  repeated_input_ids: 1 " in capsys.readouterr().out
    assert main([*args, "--allow-problems", "--no-report"]) == 0
    data = json.loads(out.read_text())
    copies = [(r["id"], name) for name in ("train", "val", "test") for r in data[name] if r.get("group") == "c004"]
    assert sorted(rid for rid, _ in copies) == ["c004", "c004#2"] and len({name for _, name in copies}) == 1


def test_repeated_id_across_grade_folders_is_reported(tmp_path):
    scans = tmp_path / "scans"
    for grade, seed in ((9, 1), (8, 3)):  # one card filed under two grades: a typo somewhere
        card_image(scans / str(grade) / "same_front.jpg", seed)
        card_image(scans / str(grade) / "same_back.jpg", seed + 1)
    summary = build_splits(str(tmp_path / "splits.json"), images=str(scans), layout="folders", val=0, test=0)
    assert not summary["written"] and not (tmp_path / "splits.json").exists()
    offenders = summary["report"]["checks"]["repeated_input_ids"]["offenders"]
    assert offenders == ["same: folder 8, folder 9 -> kept as same, same#2 in train (group same)"]


@pytest.mark.parametrize("args, needle", [
    (["--layout", "zip", "--images", "IMG"], "unknown layout 'zip'"),
    (["--layout", "folders", "--images", "nowhere"], "nowhere: images directory not found"),
    (["--csv", "CSV", "--val", "1.5"], "--val 1.5 must be a fraction"),
    (["--csv", "CSV", "--val", "0.6", "--test", "0.4"], "must leave something for train"),
    (["--csv", "CSV", "--col-grade", "psa"], "missing column 'psa'"),
    (["--csv", "CSV", "--col-edge", "damage"], "missing column 'damage'"),
])
def test_bad_build_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    scans, csv_path = scans_and_csv(tmp_path, [9])
    args = [str(csv_path) if a == "CSV" else str(scans) if a == "IMG" else a for a in args]
    assert main(["build", "--out", str(tmp_path / "s.json"), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_check_on_non_json_is_exit_2(tmp_path, capsys):
    (tmp_path / "splits.json").write_text("{not json")
    assert main(["check", str(tmp_path / "splits.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_module_runs_as_python_m(tmp_path):
    path = write_splits(tmp_path, [])
    proc = subprocess.run([sys.executable, "-m", "core.splits", "stats", path], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "train: grade histogram (8 records)" in proc.stdout
    assert (tmp_path / "splits_report.json").is_file()
