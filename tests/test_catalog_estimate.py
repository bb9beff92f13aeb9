"""The catalog (machine/GPU rules, prices per docs/design.md §7) and the time/cost estimate."""
from __future__ import annotations

import json
import math

import pytest

from core.config import config_from_dict
from cockpit.catalog import PACKAGED_CATALOG, load_catalog
from cockpit.errors import CockpitError
from cockpit.estimate import (GB, STATE_DICT_NUMBERS, Estimate, StepTime, count_state_dict_numbers, dataset_size,
                              estimate_with_alternatives,
                              estimate, format_estimate, parameter_count, quick_benchmark, step_time_from_runs,
                              storage_estimate, target_samples_per_s)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(PACKAGED_CATALOG)


def make_cfg(tmp_path, **sections):
    raw = {"data": {"splits": str(tmp_path / "missing" / "splits.json"), "synthetic_n": 100_000},
           "output": {"dir": str(tmp_path / "out")}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, where="test.toml")


# ----- catalog -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("machine,on_demand,spot", [
    ("n1-standard-8", 0.38, 0.0963), ("g2-standard-8", 0.2936, 0.1175),
    ("a2-highgpu-1g", 0.7395, 0.2958), ("a3-highgpu-8g", 9.460, 2.175)])
def test_machine_prices_match_design_us_central1(catalog, machine, on_demand, spot):
    m = catalog.machines[machine]
    assert (m.on_demand, m.spot) == (on_demand, spot)


@pytest.mark.parametrize("accelerator,on_demand,spot", [
    ("NVIDIA_TESLA_T4", 0.35, 0.14), ("NVIDIA_TESLA_V100", 2.48, 0.992), ("NVIDIA_L4", 0.560, 0.2231),
    ("NVIDIA_TESLA_A100", 2.934, 1.147)])
def test_gpu_prices_match_design_us_central1(catalog, accelerator, on_demand, spot):
    a = catalog.accelerators[accelerator]
    assert (a.on_demand, a.spot) == (on_demand, spot)


def test_catalog_names_its_source_and_date(catalog):
    assert "SkyPilot" in catalog.source and catalog.date


def test_catalog_covers_every_design_machine_and_accelerator(catalog):
    machines = ["n1-standard-4", "n1-standard-8", "n1-standard-16", "n1-standard-32", "n1-highmem-8",
                *[f"g2-standard-{n}" for n in (4, 8, 12, 16, 24, 32, 48, 96)],
                *[f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)], *[f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)],
                "a3-highgpu-8g", "a3-ultragpu-8g"]
    accelerators = ["NVIDIA_TESLA_T4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P100", "NVIDIA_L4", "NVIDIA_TESLA_A100",
                    "NVIDIA_A100_80GB", "NVIDIA_H100_80GB", "NVIDIA_H100_MEGA_80GB", "NVIDIA_H200_141GB",
                    "NVIDIA_B200"]
    assert set(machines) <= set(catalog.machines)
    assert set(accelerators) <= set(catalog.accelerators)
    for acc in accelerators:  # every accelerator runs on some machine
        assert any(acc in m.accelerators for m in catalog.machines.values()), acc


def test_hourly_price_adds_host_and_gpus(catalog):
    assert catalog.hourly_price("n1-standard-8", "NVIDIA_TESLA_T4", 2, "us-central1") == pytest.approx(0.38 + 0.70)
    assert catalog.hourly_price("n1-standard-8", "NVIDIA_TESLA_T4", 2, "us-central1", spot=True) == \
        pytest.approx(0.0963 + 0.28)


def test_hourly_price_cpu_only_is_the_host(catalog):
    assert catalog.hourly_price("n1-standard-8", "", 0, "us-central1") == pytest.approx(0.38)


def test_other_regions_apply_their_multiplier(catalog):
    assert catalog.hourly_price("n1-standard-8", "NVIDIA_TESLA_T4", 1, "europe-west4") == \
        pytest.approx(0.73 * catalog.regions["europe-west4"])


def test_machine_types_in_a_region_leave_out_unavailable_gpu_machines(catalog):
    asia = catalog.machine_types("asia-east1")
    assert "n1-standard-8" in asia and "g2-standard-8" in asia
    assert "a2-highgpu-1g" not in asia and "a3-ultragpu-8g" not in asia


def test_accelerators_for_a_machine_in_a_region(catalog):
    # The machine also takes P100s, but the image cannot run on them (below).
    assert catalog.accelerators_for("n1-standard-8", "us-east1") == ["NVIDIA_TESLA_T4"]
    assert catalog.accelerators_for("g2-standard-24") == ["NVIDIA_L4"]


def test_allowed_counts_follow_the_machine(catalog):
    assert catalog.allowed_counts("g2-standard-48", "NVIDIA_L4") == (4,)
    assert catalog.allowed_counts("n1-standard-16", "NVIDIA_TESLA_V100") == (2, 4, 8)
    assert catalog.allowed_counts("n1-standard-8", "") == (0,)
    assert catalog.allowed_counts("a2-highgpu-1g", "") == ()


def test_validate_combo_accepts_a_valid_combination(catalog):
    catalog.validate_combo("a2-ultragpu-4g", "NVIDIA_A100_80GB", 4, "us-central1")


def test_validate_combo_suggests_the_accelerator_name(catalog):
    with pytest.raises(CockpitError, match=r"'NVIDIA_L44' is not a known accelerator \(did you mean 'NVIDIA_L4'\?\)"):
        catalog.validate_combo("g2-standard-8", "NVIDIA_L44", 1, "us-central1")


def test_user_catalog_from_env_wins(tmp_path, monkeypatch, catalog):
    text = PACKAGED_CATALOG.read_text().replace("vertex_surcharge = 1.0", "vertex_surcharge = 1.2")
    (tmp_path / "mine.toml").write_text(text)
    monkeypatch.setenv("PSA_CATALOG", str(tmp_path / "mine.toml"))
    mine = load_catalog()
    assert mine.path == tmp_path / "mine.toml"
    assert mine.hourly_price("n1-standard-8", "NVIDIA_TESLA_T4", 1, "us-central1") == pytest.approx(0.73 * 1.2)


def test_user_catalog_messages_name_the_file(tmp_path, monkeypatch):
    (tmp_path / "mine.toml").write_text(PACKAGED_CATALOG.read_text())
    mine = load_catalog(tmp_path / "mine.toml")
    with pytest.raises(CockpitError, match=f"catalog: {tmp_path}/mine.toml"):
        mine.machine("n9-huge")


def test_malformed_catalog_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text(PACKAGED_CATALOG.read_text().replace(
        'accelerators = { NVIDIA_L4 = [8] }', 'accelerators = { NVIDIA_L5 = [8] }'))
    with pytest.raises(CockpitError) as info:
        load_catalog(tmp_path / "bad.toml")
    assert str(info.value) == (f"{tmp_path}/bad.toml: malformed catalog entry: machines.g2-standard-96.accelerators "
                               f"names unknown accelerator 'NVIDIA_L5'")


# ----- estimate ------------------------------------------------------------------------------------------

def test_estimate_arithmetic_on_a_hand_computed_case(tmp_path, catalog):
    cfg = make_cfg(tmp_path, training={"batch_size": 32, "phase1_epochs": 10, "phase2_epochs": 30})
    est = estimate(cfg, catalog, StepTime(40.0, "cpu", "given", None, 2))
    # 40 samples/s on CPU x 20 (cpu_to_t4) x 1.0 (T4) = 800 samples/s -> 32 / 800 = 0.04 s per step.
    # 80,000 train cards -> 2,500 steps/epoch; 10,000 val -> 313 eval steps at 0.33 of a train step.
    # Phase 1 counts half: 10 x 0.5 + 30 = 35 epoch-equivalents.
    seconds = 35 * (2500 + 313 * 0.33) * 0.04
    hours = seconds / 3600 + 5 / 60                       # plus 5 min start-up
    assert est.step_time_s == pytest.approx(0.04)
    assert est.steps == 40 * 2500
    assert est.hours == pytest.approx(hours)
    assert est.hourly_on_demand == pytest.approx(0.73) and est.hourly_spot == pytest.approx(0.2363)
    assert est.on_demand_usd == pytest.approx(0.73 * hours)
    assert est.spot_usd == pytest.approx(0.2363 * hours)


def test_cost_multiplies_by_replicas(tmp_path, catalog):
    cfg = make_cfg(tmp_path, cloud={"machine_type": "n1-standard-16", "accelerator_count": 4, "replica_count": 2})
    est = estimate(cfg, catalog, StepTime(40.0, "cpu", "given"))
    assert est.hourly_on_demand == pytest.approx((0.76 + 4 * 0.35) * 2)


def test_more_gpus_scale_with_the_efficiency_factor(tmp_path, catalog):
    one = make_cfg(tmp_path)
    eight = make_cfg(tmp_path, cloud={"machine_type": "n1-standard-16", "accelerator_count": 4, "replica_count": 2})
    st = StepTime(40.0, "cpu", "given")
    ratio = target_samples_per_s(st, eight, catalog) / target_samples_per_s(st, one, catalog)
    assert ratio == pytest.approx(1 + 7 * 0.9)


def test_throughput_scales_with_image_pixels(tmp_path, catalog):
    cfg = make_cfg(tmp_path, data={"image_size": [256, 352]})
    st = StepTime(40.0, "cpu", "given", image_size=(128, 176))
    assert target_samples_per_s(st, cfg, catalog) == pytest.approx(40 * 20 / 4)


def test_faster_gpu_shortens_the_run(tmp_path, catalog):
    t4 = make_cfg(tmp_path)
    a100 = make_cfg(tmp_path, cloud={"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100"})
    st = StepTime(40.0, "cpu", "given")
    assert estimate(a100, catalog, st).step_time_s == pytest.approx(estimate(t4, catalog, st).step_time_s / 4.0)


def test_dataset_size_comes_from_the_splits_file(tmp_path):
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"version": 1, "train": [{}] * 7, "val": [{}] * 3, "test": []}))
    cfg = config_from_dict({"data": {"splits": str(splits)}})
    assert dataset_size(cfg) == (7, 3, str(splits))


def test_the_cost_table_reads_the_splits_file_once_and_again_only_when_it_changes(tmp_path, catalog,
                                                                                 monkeypatch):
    """~65 machines are priced per edit: parsing splits.json for each took a second of CPU at 4000 cards."""
    import types

    import cockpit.estimate as estimate_module

    parses = []
    spy = types.SimpleNamespace(loads=lambda text: parses.append(1) or json.loads(text))
    monkeypatch.setattr(estimate_module, "json", spy)
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"version": 1, "train": [{}] * 7, "val": [{}] * 3, "test": []}))
    cfg = make_cfg(tmp_path, data={"splits": str(splits)})
    main, alternatives = estimate_with_alternatives(cfg, catalog, runs_dir=None)
    assert len(alternatives) > 10 and (main.train_cards, main.val_cards) == (7, 3)
    assert len(parses) == 1
    estimate_with_alternatives(cfg, catalog, runs_dir=None)
    assert len(parses) == 1
    splits.write_text(json.dumps({"version": 1, "train": [{}] * 12, "val": [{}] * 4, "test": []}))
    main, _ = estimate_with_alternatives(cfg, catalog, runs_dir=None)
    assert (main.train_cards, main.val_cards) == (12, 4) and len(parses) == 2


def test_dataset_size_without_splits_uses_synthetic_n(tmp_path):
    assert dataset_size(make_cfg(tmp_path))[:2] == (80_000, 10_000)


def _write_log(run_dir, backbone="mobilenet_v3_small", image_size=(128, 176), speeds=((2, 80.0),), device="cpu"):
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"event": "start", "device": device, "backbone": backbone, "image_size": list(image_size)}),
             "a plain line"]
    lines += [json.dumps({"event": "epoch", "phase": phase, "epoch": i, "samples_per_s": s})
              for i, (phase, s) in enumerate(speeds)]
    (run_dir / "training.log").write_text("\n".join(lines) + "\n")


def test_step_time_is_read_from_the_last_local_run(tmp_path):
    cfg = make_cfg(tmp_path)
    _write_log(tmp_path / "out", speeds=((1, 200.0), (2, 80.0), (2, 90.0), (2, 84.0)))
    st = step_time_from_runs(cfg, runs_dir=None)
    assert st.samples_per_s == 84.0 and st.device == "cpu"  # median of the phase-2 epochs
    assert st.source == f"last local run {tmp_path}/out/training.log (84 samples/s on CPU, phase 2)"


def test_step_time_from_phase_one_only_is_halved(tmp_path):
    cfg = make_cfg(tmp_path)
    _write_log(tmp_path / "out", speeds=((1, 200.0),))
    assert step_time_from_runs(cfg, runs_dir=None).samples_per_s == 100.0


def test_runs_of_another_backbone_or_size_or_device_are_ignored(tmp_path):
    cfg = make_cfg(tmp_path)
    runs = tmp_path / "runs"
    _write_log(runs / "local-1", backbone="resnet50")
    _write_log(runs / "local-2", image_size=(64, 64))
    _write_log(runs / "local-3", device="cuda:0")
    assert step_time_from_runs(cfg, runs_dir=runs) is None
    _write_log(runs / "local-4", speeds=((2, 33.0),))
    assert step_time_from_runs(cfg, runs_dir=runs).samples_per_s == 33.0


def test_estimate_falls_back_to_the_default_table(tmp_path, catalog):
    est = estimate(make_cfg(tmp_path), catalog, runs_dir=None)
    assert est.source == "default table (mobilenet_v3_small: 750 samples/s on a T4 at 224x224)"


def test_estimate_prefers_the_local_run_over_the_table(tmp_path, catalog):
    _write_log(tmp_path / "out", speeds=((2, 80.0),))
    assert estimate(make_cfg(tmp_path), catalog, runs_dir=None).source.startswith("last local run")


def test_exceeds_uses_the_price_the_job_pays(tmp_path):
    est = Estimate(hours=1, on_demand_usd=10.0, spot_usd=4.0, hourly_on_demand=10, hourly_spot=4,
                   step_time_s=1, steps=1, source="x")
    assert est.exceeds(5.0) and not est.exceeds(0.0) and not est.exceeds(20.0)
    est.spot = True
    assert not est.exceeds(5.0) and est.exceeds(3.0)


def test_format_estimate_shows_both_prices_and_the_source(tmp_path, catalog):
    text = format_estimate(estimate(make_cfg(tmp_path), catalog, StepTime(40.0, "cpu", "my source")))
    assert "on-demand $" in text and "spot $" in text and "step time:  my source" in text
    assert "phase 1 trains the back branch only" in text


def test_quick_benchmark_times_the_real_model(tmp_path):
    cfg = make_cfg(tmp_path, data={"image_size": [32, 48]}, model={"backbone": "mobilenet_v3_small"})
    st = quick_benchmark(cfg, steps=1, batch_size=2)
    assert st.device == "cpu" and st.samples_per_s > 0 and math.isfinite(st.samples_per_s)
    assert st.source.startswith("quick local benchmark (")


# ----- GPUs the image runs on, the multi-GPU machine, storage ------------------------------------------

def test_catalog_records_the_images_minimum_compute_capability(catalog):
    assert catalog.min_compute_capability == 7.0  # PyTorch 2.8 + CUDA 12.8: sm_70 .. sm_120
    caps = {name: acc.compute_capability for name, acc in catalog.accelerators.items()}
    assert all(caps.values()), caps
    assert (caps["NVIDIA_TESLA_P100"], caps["NVIDIA_TESLA_V100"], caps["NVIDIA_TESLA_T4"]) == (6.0, 7.0, 7.5)


def test_a_gpu_the_image_cannot_run_is_refused_in_one_line(catalog):
    with pytest.raises(CockpitError) as info:
        catalog.validate_combo("n1-standard-8", "NVIDIA_TESLA_P100", 1, "us-central1", where="p.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("p.toml: cloud.accelerator_type = 'NVIDIA_TESLA_P100' cannot run the training image: "
                              "compute capability 6.0, its PyTorch + CUDA build needs 7.0 or newer")


def test_a_gpu_the_image_cannot_run_is_not_offered_and_not_estimated(tmp_path, catalog):
    for machine in catalog.machine_types("us-central1"):
        assert "NVIDIA_TESLA_P100" not in catalog.accelerators_for(machine, "us-central1")
    cfg = make_cfg(tmp_path, cloud={"accelerator_type": "NVIDIA_TESLA_P100"})
    with pytest.raises(CockpitError, match="cannot run the training image"):
        estimate(cfg, catalog, StepTime(40.0, "cpu", "given"))


def test_the_guides_multi_gpu_machine_takes_four_t4s_at_a_derived_price(catalog):
    assert catalog.allowed_counts("n1-highmem-16", "NVIDIA_TESLA_T4") == (1, 2, 4)
    machine = catalog.machines["n1-highmem-16"]
    assert (machine.vcpus, machine.memory_gb) == (16, 104)
    assert machine.on_demand == pytest.approx(16 * 0.031611 + 104 * 0.004237, abs=1e-4)
    assert "derived" in machine.note  # not a quoted price: the catalog says how it was made
    assert catalog.hourly_price("n1-highmem-16", "NVIDIA_TESLA_T4", 4, "us-central1") == pytest.approx(
        machine.on_demand + 4 * 0.35)


def test_four_gpus_run_four_processes_and_the_steps_say_so(tmp_path, catalog):
    one = make_cfg(tmp_path, training={"batch_size": 32, "phase1_epochs": 0, "phase2_epochs": 10})
    four = make_cfg(tmp_path, training={"batch_size": 32, "phase1_epochs": 0, "phase2_epochs": 10},
                    cloud={"machine_type": "n1-highmem-16", "accelerator_count": 4})
    st = StepTime(40.0, "cpu", "given")
    e1, e4 = estimate(one, catalog, st), estimate(four, catalog, st)
    assert (e1.processes, e4.processes) == (1, 4)
    # 80,000 cards: one process takes 2,500 steps of 32 per epoch; four take 625 steps of 32 each.
    assert (e1.steps, e4.steps) == (10 * 2500, 10 * 625)
    assert e4.step_time_s == pytest.approx(32 * 4 / e4.samples_per_s)
    assert e4.samples_per_s == pytest.approx(e1.samples_per_s * (1 + 3 * 0.9))
    assert e4.target.endswith(", 4 training processes") and "processes" not in e1.target
    assert e4.hourly_on_demand == pytest.approx(catalog.hourly_price("n1-highmem-16", "NVIDIA_TESLA_T4", 4,
                                                                     "us-central1"))


def test_parameter_count_is_the_real_models():
    from core.model import BACKBONES, DualBranchGrader

    model = DualBranchGrader("mobilenet_v3_small", "", 0.7, 0.0)
    assert parameter_count("mobilenet_v3_small") == sum(t.numel() for t in model.state_dict().values())
    # The table the estimate reads without torch covers every backbone and matches a count with torch.
    assert set(STATE_DICT_NUMBERS) == set(BACKBONES)
    for backbone, n in STATE_DICT_NUMBERS.items():
        assert count_state_dict_numbers(backbone) == n, backbone


def test_storage_counts_kept_checkpoints_the_export_and_uploaded_data(tmp_path, catalog):
    data = tmp_path / "cards"
    (data / "img").mkdir(parents=True)
    (data / "img" / "a_f.jpg").write_bytes(b"x" * 1000)
    (data / "img" / "a_b.jpg").write_bytes(b"x" * 3000)
    rec = {"id": "a", "front": "img/a_f.jpg", "back": "img/a_b.jpg", "grade": 9}
    (data / "splits.json").write_text(json.dumps({"version": 1, "train": [rec], "val": [], "test": []}))
    cfg = make_cfg(tmp_path, data={"splits": str(data / "splits.json"), "synthetic": False},
                   model={"backbone": "resnet18"}, training={"phase1_epochs": 10, "phase2_epochs": 30},
                   output={"save_every": 5, "keep_last": 3})
    st = storage_estimate(cfg, catalog)
    n = parameter_count("resnet18")
    # last.pth + the newest 3 of 8 numbered checkpoints (weights + AdamW moments), phase1/2_best (weights).
    assert st.checkpoint_bytes == 4 * 12 * n + 2 * 4 * n
    assert st.export_bytes == 4 * n
    assert st.data_bytes == 4000 + (data / "splits.json").stat().st_size
    assert st.usd_per_gb_month == pytest.approx(0.020)
    assert st.usd_per_month == pytest.approx((st.checkpoint_bytes + st.export_bytes + st.data_bytes) / GB * 0.020)


def test_synthetic_or_bucket_data_adds_nothing_to_upload(tmp_path, catalog):
    assert storage_estimate(make_cfg(tmp_path), catalog).data_bytes == 0   # generated inside the job
    gs = make_cfg(tmp_path, data={"splits": "gs://b/cards/splits.json", "synthetic": False})
    st = storage_estimate(gs, catalog)
    assert st.data_bytes == 0 and "already in the bucket" in st.data_source


def test_storage_is_shown_beside_the_compute_cost(tmp_path, catalog):
    est = estimate(make_cfg(tmp_path, model={"backbone": "resnet18"}), catalog, StepTime(40.0, "cpu", "given"))
    lines = format_estimate(est).splitlines()
    cost = next(i for i, line in enumerate(lines) if line.startswith("cost:"))
    assert lines[cost + 1].startswith(f"storage:    ${est.storage.usd_per_month:,.2f} per month for "
                                      f"{est.storage.total_gb:,.2f} GB kept in the bucket (checkpoints ")
    assert "at $0.020/GB-month" in lines[cost + 1]


def test_the_tui_cost_panel_shows_the_same_storage_figure(tmp_path, catalog):
    from cockpit.tui.estimate_panel import EstimateResult, summary

    est = estimate(make_cfg(tmp_path, model={"backbone": "resnet18"}), catalog, StepTime(40.0, "cpu", "given"))
    text = summary(EstimateResult(est)).plain
    assert f"storage    ${est.storage.usd_per_month:,.2f}/month for {est.storage.total_gb:,.2f} GB" in text
