"""Snapshot tests of each cockpit section at 100x30 (pytest-textual-snapshot), deterministic: presets
are copies in a temp dir, clocks are frozen, cursors do not blink, job and run content is scripted.

Run as a script to export the same scenes as PNG screenshots for the docs:
    python tests/test_tui_snapshots.py docs/screenshots     (needs rsvg-convert)
"""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cockpit.backend import JobInfo, LogLine  # noqa: E402
from cockpit.tui.app import CockpitApp  # noqa: E402
from textual.widgets import Input  # noqa: E402
from textual.widgets._footer import FooterKey  # noqa: E402

SIZE = (100, 30)
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def prepare(workdir: Path) -> None:
    """Copies of the presets, with a project in the cloud one (so Build can name the image)."""
    shutil.copytree(REPO / "presets", workdir / "presets")
    cloud = workdir / "presets" / "cloud.toml"
    cloud.write_text(cloud.read_text().replace('project = ""', 'project = "my-project"', 1))


def epoch_line(phase: int, epoch: int, step: int) -> LogLine:
    k = step / 100
    payload = {"severity": "INFO", "message": f"epoch {epoch} phase {phase}", "event": "epoch", "phase": phase,
               "epoch": epoch, "epochs": 4 if phase == 1 else 12, "step": step,
               "train_loss": round(1.6 / (1 + k), 4), "val_loss": round(1.7 / (1 + 0.8 * k), 4),
               "val_qwk": round(0.9 * k / (1 + k), 4), "val_mae": 0.5, "lr": round(1e-3 * (1 - step / 900), 6),
               "samples_per_s": 81.5, "eta_s": 600.0}
    return LogLine(payload["message"], "INFO", payload=payload)


def scripted_log() -> list[LogLine]:
    lines = [LogLine("training mobilenet_v3_small on 1600 cards (cpu, fp32, world size 1)", "INFO",
                     payload={"event": "start", "message": "training"}),
             LogLine("loading the uint8 cache from ~/.cache/psa", "DEFAULT")]
    step = 0
    for phase, epochs in ((1, 4), (2, 4)):
        for epoch in range(1, epochs + 1):
            for _ in range(2):
                step += 25
                lines.append(LogLine(f"step {step} loss {1.5 / (1 + step / 100):.4f}", "INFO",
                                     payload={"event": "step", "message": "", "phase": phase, "epoch": epoch,
                                              "step": step, "lr": round(1e-3 * (1 - step / 900), 6)}))
            lines.append(epoch_line(phase, epoch, step))
            if epoch == 2 and phase == 1:
                lines.append(LogLine("tensorboard is not installed: TensorBoard scalars are off", "WARNING"))
    return lines


class ScriptedBackend:
    """A finished run whose log is `scripted_log()`: the Run/Logs scene without a trainer or a clock."""

    name = "local"
    info = JobInfo(id="local-20250601-120000-ab12", name="local", state="JOB_STATE_SUCCEEDED", backend="local",
                   create_time=T0, start_time=T0, end_time=T0 + timedelta(minutes=9), hourly_cost_usd=0.0)

    def logs(self, job_id: str, follow: bool = False, stop: threading.Event | None = None) -> Iterator[LogLine]:
        return iter(scripted_log())

    def get(self, job_id: str) -> JobInfo:
        return self.info


class ScriptedVertexBackend(ScriptedBackend):
    """A Vertex AI job that ran on a T4 for 1 h 52 min: the followed-job scene (log, curves, status line)."""

    name = "vertex"
    info = JobInfo(id="8123456789", name="psa-cloud-20250601-100800", state="JOB_STATE_SUCCEEDED",
                   backend="vertex", machine_type="n1-standard-8", accelerator_type="NVIDIA_TESLA_T4",
                   accelerator_count=1, create_time=T0 - timedelta(hours=2), start_time=T0 - timedelta(hours=2),
                   end_time=T0 - timedelta(minutes=8), hourly_cost_usd=0.73)


def job_rows() -> list[JobInfo]:
    return [
        JobInfo("8123456789", "psa-cloud-20250601-113000", "JOB_STATE_RUNNING", "vertex",
                machine_type="n1-standard-8", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1,
                create_time=T0 - timedelta(minutes=42), start_time=T0 - timedelta(minutes=35),
                hourly_cost_usd=0.73),
        JobInfo("8123450001", "psa-cloud-20250531-090000", "JOB_STATE_FAILED", "vertex",
                machine_type="g2-standard-8", accelerator_type="NVIDIA_L4", accelerator_count=1,
                create_time=T0 - timedelta(hours=27), start_time=T0 - timedelta(hours=27),
                end_time=T0 - timedelta(hours=26, minutes=10), hourly_cost_usd=0.85),
        JobInfo("local-20250601-104500-9f3c", "smoke", "JOB_STATE_SUCCEEDED", "local",
                create_time=T0 - timedelta(hours=1, minutes=15), start_time=T0 - timedelta(hours=1, minutes=15),
                end_time=T0 - timedelta(hours=1, minutes=13), hourly_cost_usd=0.0),
        JobInfo("local-20250601-110000-1a2b", "local", "JOB_STATE_CANCELLED", "local",
                create_time=T0 - timedelta(hours=1), start_time=T0 - timedelta(hours=1),
                end_time=T0 - timedelta(minutes=50), hourly_cost_usd=0.0),
    ]


# -- scenes: each leaves the app on one section, settled ---------------------------------------------------

async def _settle(pilot) -> None:
    app = pilot.app
    for _ in range(400):  # the picker mounts right after the first paint (bounded: a crash must not hang)
        if app.presets_section.ready:
            break
        await pilot.pause(0.05)
    assert app.presets_section.ready, "the Presets section never became ready"
    for box in app.query(Input):
        box.cursor_blink = False
    await app.workers.wait_for_complete()
    await pilot.pause()
    app.clear_notifications()
    await pilot.wait_for_scheduled_animations()
    # The footer recomposes a few frames after a focus change: wait until it shows this section's keys.
    section = app.active_section_widget()
    wanted = {b.description for b in section.BINDINGS if b.show}
    for _ in range(40):
        if wanted & {key.description for key in app.query(FooterKey)}:
            break
        await pilot.pause(0.05)
    await pilot.pause()


async def scene_presets(pilot) -> None:
    await _settle(pilot)


async def scene_form_cloud(pilot) -> None:
    """The form's [cloud] section (built when first shown; F8 from [data] wraps to it): catalog selects."""
    await _settle(pilot)
    await pilot.press("f8")
    await _settle(pilot)


async def scene_cost(pilot) -> None:
    await pilot.press("f3")
    await _settle(pilot)


async def scene_build(pilot) -> None:
    await pilot.press("f4")
    app = pilot.app
    build = app.query_one("#build-section")
    build.query_one("#build-log").write_lines([
        "      $ docker build -t us-central1-docker.pkg.dev/my-project/psa/psa-trainer:5ae8caf .",
        "      #1 [internal] load build definition from Dockerfile",
        "      #2 [internal] load metadata for docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
        "      #5 [2/6] COPY pyproject.toml ./",
        "      #6 [3/6] RUN pip install --no-cache-dir .[gcs]",
        "      #8 exporting to image",
        "      $ docker push us-central1-docker.pkg.dev/my-project/psa/psa-trainer:5ae8caf",
        "      5f70bf18a086: Pushed",
        "INFO  pushed us-central1-docker.pkg.dev/my-project/psa/psa-trainer:5ae8caf"])
    app.query_one("#build-state").update("done in 2:41")
    await _settle(pilot)


async def scene_jobs(pilot) -> None:
    await pilot.press("f5")
    await pilot.pause()
    pilot.app.jobs_section.show_jobs(job_rows(), "", now=T0)
    await _settle(pilot)


async def scene_run(pilot) -> None:
    app = pilot.app
    backend = ScriptedBackend()
    await pilot.press("f6")  # (action_section alone left the snapshot on Presets)
    app.run_section.follow(backend, backend.info)
    await _settle(pilot)
    await pilot.pause(0.3)  # the UI drains the feed on a 0.1 s timer
    await _settle(pilot)


async def scene_vertex(pilot) -> None:
    app = pilot.app
    backend = ScriptedVertexBackend()
    await pilot.press("f6")
    app.run_section.follow(backend, backend.info)
    await _settle(pilot)
    await pilot.pause(0.3)
    await _settle(pilot)


async def scene_submit(pilot) -> None:
    """F7's confirmation, for a plan with a fixed image tag and job name (the real ones carry the commit
    and the time)."""
    from cockpit.presets import validate_preset
    from cockpit.submit import plan_submit
    from cockpit.tui.dialogs import SubmitDialog

    app = pilot.app
    await _settle(pilot)
    cfg = validate_preset(app.doc.path, ["cloud.bucket=gs://my-psa-bucket"], app.catalog, submitting=True)
    plan = plan_submit(cfg, catalog=app.catalog, tag="5ae8caf", display_name="psa-cloud-20250601-120000")
    await app.push_screen(SubmitDialog(plan.summary(), [], can_upload=False, saves=False))
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


SCENES = {"presets": ("presets/local.toml", scene_presets), "form_cloud": ("presets/cloud.toml", scene_form_cloud),
          "cost": ("presets/cloud.toml", scene_cost),
          "build": ("presets/cloud.toml", scene_build), "jobs": ("presets/cloud.toml", scene_jobs),
          "run": ("presets/local.toml", scene_run), "submit": ("presets/cloud.toml", scene_submit),
          "vertex": ("presets/cloud.toml", scene_vertex)}


class FrozenJobsApp(CockpitApp):
    """No background job polling: the Jobs table shows exactly what the scene puts there."""

    def build_section(self, section_id: str):
        section = super().build_section(section_id)
        if section_id == "jobs":  # built the first time Jobs is shown
            section.refresh_jobs = lambda: None  # type: ignore[attr-defined]
        return section


class SnapshotApp(FrozenJobsApp):
    """The footer recomposes a few frames after any bindings change, at a moment that depends on the
    machine's load; snapshots leave it out (the docs screenshots show it)."""

    CSS = "Footer { display: none; }"


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    from cockpit.catalog import PACKAGED_CATALOG

    prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSA_CATALOG", str(PACKAGED_CATALOG))
    monkeypatch.delenv("PSA_VERTEX_ENDPOINT", raising=False)
    return tmp_path


@pytest.mark.parametrize("scene", list(SCENES))
def test_section_snapshot(scene, workdir, snap_compare):
    preset, before = SCENES[scene]
    app = SnapshotApp(preset, runs_dir=workdir / "runs")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


# -- screenshots for the docs ------------------------------------------------------------------------------

async def _screenshot(scene: str, out_dir: Path) -> Path:
    preset, before = SCENES[scene]
    app = FrozenJobsApp(preset, runs_dir=Path("runs"))
    async with app.run_test(size=SIZE) as pilot:
        await before(pilot)
        svg = Path(app.save_screenshot(filename=f"{scene}.svg", path=str(out_dir)))
    png = out_dir / f"{scene}.png"
    # Textual writes spaces as &#160;; rsvg-convert drops leading ones unless told to keep whitespace.
    svg.write_text(svg.read_text().replace("<svg ", '<svg xml:space="preserve" ', 1))
    subprocess.run(["rsvg-convert", "-z", "1", str(svg), "-o", str(png)], check=True)
    svg.unlink()
    return png


def main(out_dir: str) -> None:
    import os

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp))
        os.chdir(tmp)
        for scene in SCENES:
            print(asyncio.run(_screenshot(scene, out)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
