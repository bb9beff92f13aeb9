"""The benchmark scripts run end to end in their tiny `--quick` mode and print their tables.

They measure nothing at these sizes; the point is that `make bench` does not rot as core changes.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_loop  # noqa: E402
import bench_local_preset  # noqa: E402


def _run(script: str, *args: str, tmp_path: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PSA_CACHE_DIR": str(tmp_path / "cache"),
           "CUDA_VISIBLE_DEVICES": "", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_run_all_quick_prints_loop_data_and_startup_sections(tmp_path):
    data_dir = tmp_path / "bench"
    proc = _run("run_all.py", "--quick", "--startup-runs", "1", "--data-dir", str(data_dir), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for heading in ("## Summary", "## Training loop (1-3)", "## Data pipeline (4)", "## Cockpit start-up (5)"):
        assert heading in out
    for row in ("| bare ", "| core ", "| lightning ", "| cached w0 ", "| cold w1 ", "core / bare"):
        assert row in out
    assert (data_dir.parent / "bench-quick" / "splits.json").exists()  # the set --quick generated


@pytest.mark.slow
def test_local_preset_quick_reports_test_metrics(tmp_path):
    proc = _run("bench_local_preset.py", "--quick", "--set", f"data.splits={tmp_path}/cards/splits.json",
                "--set", f"data.cache_dir={tmp_path}/cache", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    at = next(i for i, line in enumerate(lines) if "test QWK" in line)
    header, _, row = lines[at:at + 3]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["preset"] == "local" and cells["epochs"] == "2"
    assert 0.0 <= float(cells["exact"]) <= float(cells["within one"]) <= 1.0
    float(cells["other-seed QWK"]), float(cells["QWK gap"]), float(cells["max val drop"])
    assert any(line.strip("| ").startswith("corners") for line in lines[at + 3:])  # the criterion table
    misses = next(i for i, line in enumerate(lines) if "other-seed grade set by" in line)
    end = lines.index("", misses)  # the table ends at the blank line before the criterion table
    counted = [line.split("|") for line in lines[misses + 2:end]]
    assert counted and all(int(row[3]) <= int(row[2]) for row in counted)  # off by 2+ <= cards per group
    intervals = [line for line in lines if "QWK 95% bootstrap interval" in line]
    assert [line.split()[0] for line in intervals] == ["test", "other-seed"]
    float(cells["test QWK"]), float(cells["MAE"]), float(cells["samples/s ph2"])


def test_prepare_quick_times_each_stage_on_one_thread_and_on_all(tmp_path):
    proc = _run("bench_prepare.py", "--quick", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| ")}
    for stage in ("generate", "view cache + detail map", "crop cache", "total"):
        one, many, ratio = (float(c) for c in rows[stage].strip("| ").split("|")[1:])
        assert one > 0 and many > 0 and ratio > 0
    assert "median3x3" in proc.stdout


def test_step_quick_times_a_training_step_in_each_variant(tmp_path):
    # Two threads, so the sides can run at once; one thread has nothing to split and no such row.
    proc = _run("bench_step.py", "--quick", tmp_path=tmp_path, env_extra={"OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| ")}
    for name in ("before", "lower_median", "fused AdamW", "sides at once"):
        step_ms, ratio = (float(c) for c in rows[name].strip("| ").split("|")[1:])
        assert step_ms > 0 and ratio > 0
    assert float(rows["before"].strip("| ").split("|")[2]) == 1.0
    assert "edge-crop medians: torch.median" in proc.stdout
    one = _run("bench_step.py", "--quick", tmp_path=tmp_path, env_extra={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 0 and "fused AdamW" in one.stdout and "sides at once" not in one.stdout


def test_local_preset_bad_override_fails_with_one_line(tmp_path):
    proc = _run("bench_local_preset.py", "--set", "training.batch_size=zero", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("bench_local_preset: ") and "training.batch_size" in proc.stderr


def test_qwk_interval_is_tight_for_many_cards_wide_for_few_and_brackets_the_qwk():
    from core.metrics import qwk

    rng = np.random.default_rng(1)
    true = rng.integers(1, 11, 2000)
    pred = np.clip(true + rng.integers(-1, 2, 2000) * (rng.random(2000) < 0.6), 1, 10)

    def confusion(t, p):
        cm = np.zeros((10, 10), dtype=int)
        np.add.at(cm, (t - 1, p - 1), 1)
        return cm.tolist()

    many, few = confusion(true, pred), confusion(true[:100], pred[:100])
    low, high = bench_local_preset.qwk_interval(many, draws=300)
    assert low < qwk(true, pred) < high and high - low < 0.02
    low_few, high_few = bench_local_preset.qwk_interval(few, draws=300)
    assert high_few - low_few > 2 * (high - low)
    assert bench_local_preset.qwk_interval(confusion(true, true), draws=50) == (1.0, 1.0)


def test_summarise_reads_epoch_and_done_lines():
    lines = "\n".join([
        'not json', '{"event":"epoch","phase":1,"samples_per_s":10.0,"epoch_time_s":2.0,"data_time_s":0.5}',
        '{"event":"epoch","phase":2,"samples_per_s":20.0,"epoch_time_s":3.0,"data_time_s":0.25}',
        '{"event":"epoch","phase":2,"samples_per_s":40.0,"epoch_time_s":3.0,"data_time_s":0.25}',
        '{"event":"done","test_qwk":0.9,"test_mae":0.4,"test_acc":0.5,"test_within_one":0.95}'])
    s = bench_local_preset.summarise(bench_local_preset.parse_events(lines), wall_s=12.0)
    assert s["samples_per_s"] == {1: 10.0, 2: 30.0}
    assert (s["train_s"], s["data_s"], s["epochs"]) == (8.0, 1.0, 3)
    assert (s["test_qwk"], s["test_within_one"]) == (0.9, 0.95)


@pytest.mark.parametrize("name, precision, peak", [
    ("NVIDIA H100 PCIe", "bf16", 756.0), ("NVIDIA H100 80GB HBM3", "bf16", 989.0),
    ("NVIDIA H200", "fp32", 67.0), ("Tesla T4", "bf16", None), ("NVIDIA A100-SXM4-40GB", "fp16", 312.0),
    ("Some Future GPU", "bf16", None)])
def test_peak_tflops_picks_the_most_specific_gpu_name(name, precision, peak):
    assert bench_loop.peak_tflops(name, precision) == peak


def test_format_table_pads_columns_into_markdown():
    table = bench_loop.format_table(["loop", "samples/s"], [["bare", "79.1"], ["lightning", "8"]])
    assert table.splitlines() == ["| loop      | samples/s |", "|-----------|-----------|",
                                  "| bare      | 79.1      |", "| lightning | 8         |"]


def test_misses_are_grouped_by_the_criterion_that_sets_the_true_grade():
    from core.records import CardRecord

    def card(grade, subs):
        return CardRecord(id=f"c{grade}{subs}", front="f.jpg", back="b.jpg", grade=grade, subgrades=subs)

    records = [card(6, (9, 10, 10, 6)),   # surface sets it; read as 8: off by 2
               card(6, (9, 10, 10, 6)),   # surface; read as 7: within one
               card(5, (5, 10, 9, 10)),   # centering; read as 3: off by 2
               card(8, (8, 8, 10, 10)),   # centering and corners: a tie
               card(9, None),             # no sub-grades: left out
               card(7, (9, 9, 9, 9))]     # none of them sets the grade: left out
    groups = bench_local_preset.misses_by_limiting_criterion(records, [8, 7, 3, 10, 1, 1])
    assert groups == [{"limited by": "centering", "cards": 1, "off by 2+": 1},
                      {"limited by": "surface", "cards": 2, "off by 2+": 1},
                      {"limited by": "tie", "cards": 1, "off by 2+": 1}]
