"""Pilot tests of the cockpit TUI (App.run_test) against the real engine and the fakes in tests/fakes."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from cockpit.catalog import PACKAGED_CATALOG
from cockpit.errors import CockpitError
from cockpit.local_runs import LocalBackend
from cockpit.presets import PresetDocument
from cockpit.tui.app import CockpitApp
from cockpit.jobs import Backends
from cockpit.tui.dialogs import ConfirmDialog, ErrorDialog, HelpScreen
from cockpit.tui.form import FORM_SECTIONS
from cockpit.tui.logview import LogView
from textual.widgets import DataTable, Input, Select, Static

pytestmark = pytest.mark.asyncio
REPO = Path(__file__).resolve().parent.parent
SIZE = (100, 30)

FAKE_TRAINER = """\
import json, sys, time
def emit(event, message, **fields):
    print(json.dumps({"severity": "INFO", "message": message, "event": event, **fields}), flush=True)
emit("start", "training on 120 cards")
print("a plain line from the trainer", flush=True)
for epoch in range(1, 4):
    time.sleep(0.15)
    emit("step", f"step {epoch * 10}", phase=1, epoch=epoch, step=epoch * 10, train_loss=1.5 / epoch,
         lr=0.001 / epoch, samples_per_s=120.0)
    emit("epoch", f"epoch {epoch}", phase=1, epoch=epoch, epochs=3, step=epoch * 10, train_loss=1.2 / epoch,
         val_loss=1.3 / epoch, val_qwk=0.3 * epoch, lr=0.001 / epoch, samples_per_s=120.0, eta_s=3 - epoch)
print(json.dumps({"severity": "WARNING", "message": "a warning", "event": "warning"}), flush=True)
emit("done", "test QWK 0.9")
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working directory with copies of the repo's presets (edits never touch the real files)."""
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSA_CATALOG", str(PACKAGED_CATALOG))
    monkeypatch.delenv("PSA_VERTEX_ENDPOINT", raising=False)
    return tmp_path


async def wait_for(pilot, predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


async def ready(pilot) -> None:
    """The first screen takes keys once the preset picker (mounted right after the first paint) and the
    form's section on screen are mounted: wait for them."""
    await wait_for(pilot, lambda: pilot.app.presets_section.ready)


async def show_form_section(pilot, section: str) -> None:
    """Show a preset section as a user does, with F9 (it works in a text box too); a section is built the
    first time it is shown."""
    form = pilot.app.presets_section.form
    for _ in range(len(FORM_SECTIONS)):
        if form.current == section:
            break
        before = form.current
        await pilot.press("f9")
        await wait_for(pilot, lambda: form.current != before)
    assert form.current == section
    await wait_for(pilot, lambda: form.ready)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def error_text(app: CockpitApp, section: str, key: str) -> str:
    """The message shown under a form row ("" when the row is valid)."""
    shown = app.query(f"#error-{section}--{key}")
    return str(shown.first(Static).render()) if shown else ""


# -- Presets ---------------------------------------------------------------------------------------------

async def test_bad_value_shows_the_engines_message(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "0"
        await pilot.pause()
        try:
            PresetDocument.load(workdir / "presets/local.toml").set("training", "batch_size", 0)
        except CockpitError as exc:
            expected = exc.message.replace(str(workdir) + "/", "")
        assert error_text(app, "training", "batch_size") == expected
        assert "training.batch_size = 0 must be >= 1" in expected


async def test_fixing_a_bad_value_clears_its_message(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "training")
        field = app.query_one("#training--lr_phase1", Input)
        field.value = "fast"
        await pilot.pause()
        assert "must be a number" in error_text(app, "training", "lr_phase1")
        field.value = "5e-4"
        await pilot.pause()
        assert error_text(app, "training", "lr_phase1") == ""
        assert app.doc.get("training", "lr_phase1") == 5e-4


async def test_changing_the_gpu_changes_the_estimate(workdir):
    app = CockpitApp("presets/cloud.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "cloud")
        await settle(pilot)
        before = app.estimate_result.estimate
        assert before is not None and "NVIDIA_TESLA_T4" in before.target
        app.query_one("#cloud--accelerator_type", Select).value = "NVIDIA_TESLA_V100"
        await wait_for(pilot, lambda: app.estimate_result.estimate is not None
                       and "V100" in app.estimate_result.estimate.target)
        after = app.estimate_result.estimate
        assert after.on_demand_usd != before.on_demand_usd
        assert "V100" in str(app.query_one("#preset-cost", Static).render())


async def test_gpu_choices_follow_the_machine(workdir):
    app = CockpitApp("presets/cloud.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "cloud")
        app.query_one("#cloud--machine_type", Select).value = "g2-standard-8"
        await pilot.pause()
        await pilot.pause()
        acc = app.query_one("#cloud--accelerator_type", Select)
        count = app.query_one("#cloud--accelerator_count", Select)
        assert [v for _, v in acc._options if v is not Select.NULL] == ["NVIDIA_L4"]
        assert acc.value == "NVIDIA_L4"
        assert [v for _, v in count._options if v is not Select.NULL] == [1]
        assert app.validation_error == ""


async def test_save_keeps_the_files_comments(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "64"
        await pilot.pause()
        assert app.doc.dirty
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not app.doc.dirty
    text = (workdir / "presets/local.toml").read_text()
    assert "batch_size = 64" in text
    assert text.startswith("# CPU-friendly preset: the built-in synthetic cards")
    assert "num_workers = 0                         # 2 cores: the model needs them more than the loader" in text


async def test_quit_with_unsaved_changes_asks_first(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "48"
        await pilot.pause()
        app.presets_section.form.focus()
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert "unsaved changes" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, ConfirmDialog)


async def test_switching_preset_with_unsaved_changes_asks_first(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "48"
        await pilot.pause()
        app.query_one("#preset-picker", Select).value = str((workdir / "presets/smoke.toml").resolve())
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause()
        assert app.doc.path.name == "local.toml" and app.doc.dirty
        assert app.query_one("#preset-picker", Select).value == str(app.doc.path)


async def test_new_preset_from_this_one_extends_it(workdir):
    app = CockpitApp("presets/smoke.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
        box = app.screen.query_one("#prompt-input", Input)
        box.value = "presets/tiny.toml"
        await pilot.press("enter")
        await pilot.pause()
        assert app.doc.path == (workdir / "presets/tiny.toml").resolve()
    text = (workdir / "presets/tiny.toml").read_text()
    assert 'extends = "smoke.toml"' in text
    assert PresetDocument.load(workdir / "presets/tiny.toml").validate().training.batch_size == 16


def expected_value(doc: PresetDocument, section: str, key: str, widget) -> object:
    from cockpit.tui.form import to_text
    from textual.widgets import Checkbox

    value = doc.get(section, key)
    if isinstance(widget, Checkbox):
        return bool(value)
    if isinstance(widget, Input):
        return to_text(value)
    return value


def assert_rows_show(app: CockpitApp, doc: PresetDocument, section: str) -> None:
    """Every row of `section` shows `doc`'s effective value."""
    from core.config import schema

    for spec in (s for s in schema() if s.section == section):
        widget = app.query_one(f"#{section}--{spec.key}")
        assert widget.value == expected_value(doc, section, spec.key, widget), (section, spec.key)


async def test_a_later_section_is_built_when_first_shown_with_the_files_values(workdir):
    app = CockpitApp("presets/cloud.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        form = app.presets_section.form
        assert form.current == FORM_SECTIONS[0] == "data" and set(form.groups) == {"data"}
        assert not app.query("#group-training") and not app.query("#training--batch_size")
        assert not app.query("#cloud--machine_type")
        await show_form_section(pilot, "training")
        assert set(form.groups) == {"data", "model", "training"}  # F9 went through [model]
        assert_rows_show(app, app.doc, "training")
        assert not app.query_one("#group-data").display and app.query_one("#group-training").display
        await show_form_section(pilot, "cloud")
        assert_rows_show(app, app.doc, "cloud")
        # the catalog selects offer what the catalog allows for the file's machine and region
        machine, region = app.doc.get("cloud", "machine_type"), app.doc.get("cloud", "region")
        acc = app.query_one("#cloud--accelerator_type", Select)
        offered = [v for _, v in acc._options if v is not Select.NULL and v != ""]  # "": CPU only
        assert offered == app.catalog.accelerators_for(machine, region) and len(offered) > 1


async def test_opening_another_preset_updates_built_and_unbuilt_sections(workdir):
    local = PresetDocument.load(workdir / "presets/local.toml")
    cloud = PresetDocument.load(workdir / "presets/cloud.toml")
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await show_form_section(pilot, "model")  # [data] and [model] built, the rest not yet
        assert local.get("model", "backbone") != cloud.get("model", "backbone")  # the test can tell them apart
        assert local.get("data", "image_size") != cloud.get("data", "image_size")
        app.query_one("#preset-picker", Select).value = str((workdir / "presets/cloud.toml").resolve())
        await wait_for(pilot, lambda: app.doc.path.name == "cloud.toml")
        await pilot.pause()
        assert_rows_show(app, cloud, "data")
        assert_rows_show(app, cloud, "model")
        assert local.get("output", "dir") != cloud.get("output", "dir")
        await show_form_section(pilot, "output")  # built after the load: from the new document
        assert_rows_show(app, cloud, "output")
        await show_form_section(pilot, "cloud")
        assert_rows_show(app, cloud, "cloud")
        assert str(app.query_one("#top--description", Input).value) == cloud.get(None, "description")


async def test_a_refused_value_in_a_section_not_on_screen_stays_flagged(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        form = app.presets_section.form
        status = app.query_one("#preset-status", Static)
        bar = app.query_one("#form-sections", Static)
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "0"
        await pilot.pause()
        message = error_text(app, "training", "batch_size")
        assert "training.batch_size = 0 must be >= 1" in message
        await show_form_section(pilot, "loss")  # [training] is off screen now
        assert not app.query_one("#group-training").display
        assert form.errors() == {"training.batch_size": message}
        assert " training! " in str(bar.render()) and " loss! " not in str(bar.render())
        assert message in str(status.render()) and status.has_class("invalid")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert app.screen.message == f"not saved: {message}"
        await pilot.press("enter")
        await show_form_section(pilot, "training")
        app.query_one("#training--batch_size", Input).value = "48"
        await pilot.pause()
        assert form.errors() == {} and "!" not in str(bar.render())
        assert str(status.render()) == "✓ the preset is valid" and not status.has_class("invalid")


async def test_keys_reach_every_form_section(workdir):
    from cockpit.tui.commands import CockpitCommands

    app = CockpitApp("presets/cloud.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        form = app.presets_section.form
        seen = [form.current]
        for _ in FORM_SECTIONS:  # F9 steps through every section and wraps around
            await pilot.press("f9")
            await wait_for(pilot, lambda: form.current != seen[-1] and form.ready)
            seen.append(form.current)
        assert seen == [*FORM_SECTIONS, FORM_SECTIONS[0]] and set(form.groups) == set(FORM_SECTIONS)
        await pilot.press("f8")  # back, wrapping to the last
        await wait_for(pilot, lambda: form.current == FORM_SECTIONS[-1])
        form.focus()  # outside a text box, ] and [ step too
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: form.current == FORM_SECTIONS[0])
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: form.current == FORM_SECTIONS[-1])
        # in a text box F9 still works, and the focus goes on to the new section's first row
        app.query_one("#cloud--project", Input).focus()
        await pilot.press("f9")
        await wait_for(pilot, lambda: form.current == FORM_SECTIONS[0])
        assert app.focused is app.query_one("#data--splits")
        # the command palette lists every section
        titles = {t: cb for t, _, cb in CockpitCommands(app.screen)._commands()}
        assert {f"Presets: Edit the {s} section" for s in FORM_SECTIONS} <= set(titles)
        titles["Presets: Edit the loss section"]()
        await wait_for(pilot, lambda: form.current == "loss")


async def test_a_click_on_a_section_name_shows_it(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        bar = app.query_one("#form-sections", Static)
        text = str(bar.render())
        await pilot.click(bar, offset=(text.index(" output ") + 2, 0))
        await wait_for(pilot, lambda: app.presets_section.form.current == "output")
        assert app.query_one("#group-output").display


# -- Run/Logs --------------------------------------------------------------------------------------------

def fake_backends(workdir: Path) -> Backends:
    script = workdir / "fake_train.py"
    script.write_text(FAKE_TRAINER)
    backends = Backends(workdir / "runs")
    backends.local = LocalBackend(workdir / "runs", command_prefix=[sys.executable, str(script)],
                                  cancel_grace_s=2)
    return backends


async def test_local_run_shows_epoch_lines_and_plotted_points(workdir):
    app = CockpitApp("presets/smoke.toml", backends=fake_backends(workdir))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6")
        await pilot.press("r")
        run = app.run_section
        await wait_for(pilot, lambda: run.job is not None and run.job.terminal, timeout=20)
        await wait_for(pilot, lambda: run.epoch_lines == 3)
        lines = run.log_view.lines
        assert sum(line.startswith("EPOCH") for line in lines) == 3
        assert any(line.startswith("WARN") and "a warning" in line for line in lines)
        curves = run.plots.curves
        assert curves.epochs == [1, 2, 3]
        assert curves.val_qwk == pytest.approx([0.3, 0.6, 0.9])
        assert len(curves.lr) == 3
        assert run.job.state == "JOB_STATE_SUCCEEDED"
        assert "epoch 3/3" in run.status_text() and "120 samples/s" in run.status_text()


async def test_quit_during_a_local_run_asks_first(workdir):
    backends = fake_backends(workdir)
    (workdir / "fake_train.py").write_text("import time\nprint('working', flush=True)\ntime.sleep(30)\n")
    app = CockpitApp("presets/smoke.toml", backends=backends)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6", "r")
        await wait_for(pilot, lambda: app.run_section.job is not None)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog) and "still training" in app.screen.question
        await pilot.press("n")
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.run_section.job.terminal, timeout=10)
        assert app.run_section.job.state == "JOB_STATE_CANCELLED"


@pytest.mark.slow
async def test_real_smoke_run_plots_an_epoch(workdir):
    shutil.copytree(REPO / "core", workdir / "core", ignore=shutil.ignore_patterns("__pycache__"))
    app = CockpitApp("presets/smoke.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6", "r")
        run = app.run_section
        await wait_for(pilot, lambda: run.epoch_lines >= 1, timeout=300)
        assert run.plots.curves.epochs[0] == 1
        await wait_for(pilot, lambda: run.job.terminal, timeout=300)
        assert run.job.state == "JOB_STATE_SUCCEEDED", run.log_view.lines[-5:]


# -- Log view --------------------------------------------------------------------------------------------

async def test_log_stops_following_when_scrolled_up_and_resumes_at_the_bottom(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6")
        view = app.run_section.log_view
        view.write_lines(f"INFO  line {i}" for i in range(500))
        await pilot.pause()
        assert view.following
        view.log.scroll_to(y=100, animate=False)
        await pilot.pause()
        view.write_lines(f"INFO  more {i}" for i in range(100))
        await pilot.pause()
        assert view.log.scroll_y == 100 and not view.following
        await pilot.press("end")
        await pilot.pause()
        view.write_lines(["INFO  newest"])
        await pilot.pause()
        assert view.following and view.log.scroll_y == view.log.max_scroll_y


async def test_log_filter_shows_only_matching_lines(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6")
        view = app.run_section.log_view
        view.write_lines(["INFO  alpha", "ERROR beta failed", "INFO  gamma", "WARN  beta again"])
        await pilot.press("slash")
        await pilot.press(*"beta")
        await pilot.pause()
        assert list(view.log.lines) == ["ERROR beta failed", "WARN  beta again"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(view.log.lines) == 4


# -- Vertex AI jobs (fake JobService + fake Cloud Logging) ------------------------------------------------

EPOCH = {"severity": "INFO", "message": "epoch 1 phase 1", "event": "epoch", "phase": 1, "epoch": 1,
         "epochs": 10, "step": 50, "train_loss": 1.4, "val_loss": 1.5, "val_qwk": 0.42, "lr": 0.001,
         "samples_per_s": 300.0, "eta_s": 900.0}


def running_vertex_job(workdir: Path, fake_vertex, log_script: list):
    """A RUNNING Vertex job (it stays so until cancelled) whose log is `log_script`."""
    from cockpit.vertex import VertexBackend, build_custom_job

    doc = PresetDocument.load(workdir / "presets/cloud.toml")
    doc.set("cloud", "project", "test-project")
    doc.set("cloud", "bucket", "gs://test-bucket")
    doc.save()
    cfg = doc.validate()
    fake_vertex.running_gets = 10_000  # stays RUNNING until cancelled
    fake_vertex.log_script = log_script
    created = VertexBackend(cfg).create(build_custom_job(cfg, "cloud", "img:1", [], "psa-cloud-test"))
    fake_vertex.advance_all()
    fake_vertex.advance_all()  # QUEUED -> PENDING -> RUNNING: the fake writes the log script now
    return created


async def open_first_vertex_job(pilot) -> None:
    """Jobs section, wait for the Vertex job, Enter: the Run section follows it."""
    await ready(pilot)
    await pilot.press("f5")
    jobs = pilot.app.jobs_section
    await wait_for(pilot, lambda: any(j.backend == "vertex" for j in jobs.jobs.values()))
    assert jobs.note == ""
    await pilot.press("enter")


async def test_vertex_job_streams_its_log_and_cancel_changes_its_state(workdir, fake_vertex):
    created = running_vertex_job(workdir, fake_vertex, ["container started", EPOCH])
    app = CockpitApp("presets/cloud.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_vertex_job(pilot)
        run = app.run_section
        await wait_for(pilot, lambda: run.epoch_lines == 1, timeout=15)
        assert app.active_section == "run" and run.job.id == created.id
        assert any("container started" in line for line in run.log_view.lines)
        assert run.plots.curves.val_qwk == [0.42]
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: run.job.state == "JOB_STATE_CANCELLED", timeout=10)
        assert "CANCELLED" in str(app.query_one("#run-status", Static).render())
        assert any(kind == "cancel" for kind, _ in fake_vertex.requests)


async def test_vertex_epoch_line_shows_integers_in_log_and_status(workdir, fake_vertex):
    # The fake Logging service stores EPOCH as a jsonPayload Struct: every number comes back a double.
    running_vertex_job(workdir, fake_vertex, [{**EPOCH, "phase": 2, "epoch": 4, "step": 1200}])
    app = CockpitApp("presets/cloud.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_vertex_job(pilot)
        run = app.run_section
        await wait_for(pilot, lambda: run.epoch_lines == 1, timeout=15)
        assert any(line.startswith("EPOCH phase 2 epoch 4/10  ") for line in run.log_view.lines)
        status = str(app.query_one("#run-status", Static).render())
        progress = status[status.index("phase"):status.index("samples")]
        assert progress == "phase 2  ·  epoch 4/10  ·  step 1200  ·  300 "   # no "4.0/10.0" from the Struct doubles


async def test_jobs_without_a_project_note_local_only(workdir):
    app = CockpitApp("presets/local.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f5")
        await settle(pilot)
        assert app.jobs_section.note.startswith("Vertex AI: set cloud.project")
        assert app.query_one("#jobs-table", DataTable).row_count == 0


# -- errors, help, palette -------------------------------------------------------------------------------

async def test_a_failing_worker_shows_its_message_in_a_dialog(workdir):
    app = CockpitApp("presets/local.toml")  # no cloud.project: the image URI cannot be formed
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f4", "b")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert app.screen.message == "presets/local.toml: cloud.project is empty; the image URI needs it"
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, ErrorDialog)


async def test_build_streams_docker_output_and_can_be_cancelled(workdir, monkeypatch):
    monkeypatch.setenv("PATH", f"{REPO / 'tests/bin'}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("DOCKER_STUB_MODE", "slow")
    monkeypatch.setenv("DOCKER_STUB_NO_MANIFEST", "1")  # the tag is not in the registry: a build starts
    monkeypatch.setenv("DOCKER_STUB_DELAY", "0.02")
    doc = PresetDocument.load(workdir / "presets/cloud.toml")
    doc.set("cloud", "project", "test-project")
    doc.save()
    app = CockpitApp("presets/cloud.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f4", "b")
        build = app.query_one("#build-section")
        view = app.query_one("#build-log", LogView)
        await wait_for(pilot, lambda: len(view.lines) > 5)
        assert view.lines[0].strip().startswith("$ docker build -t us-central1-docker.pkg.dev/test-project/psa/psa-trainer:")
        await pilot.press("x")
        await wait_for(pilot, lambda: build.outcome == "cancelled")
        assert not isinstance(app.screen, ErrorDialog)


async def test_help_lists_every_binding(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {(keys, action) for _, keys, action, _ in app.screen.rows}
        from cockpit.tui.sections.jobs import JobsSection
        from cockpit.tui.sections.presets import PresetsSection
        from cockpit.tui.sections.run import RunSection
        for cls in (CockpitApp, PresetsSection, JobsSection, RunSection, LogView):
            for b in cls.BINDINGS:
                assert b.id and b.tooltip, b
                assert (", ".join(k.strip() for k in b.key.split(",")), b.description) in listed


async def test_command_palette_lists_the_current_sections_actions_first(workdir):
    from cockpit.tui.commands import CockpitCommands

    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6")
        titles = [t for t, _, _ in CockpitCommands(app.screen)._commands()]
        assert titles[0] == "Run/Logs: Start a local training run"
        await pilot.press("f2")
        titles = [t for t, _, _ in CockpitCommands(app.screen)._commands()]
        assert titles[0] == "Presets: Save the preset"


async def test_fits_an_80x24_terminal(workdir):
    app = CockpitApp("presets/local.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("f2", "f3", "f4", "f5", "f6"):
            await pilot.press(key)
            await pilot.pause()
            section = app.active_section_widget()
            assert section.region.width == 80 and section.region.bottom <= 23


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_boolean_rows_show_their_whole_mark_and_value(workdir, size):
    from cockpit.tui.form import BoolField

    app = CockpitApp("presets/local.toml", runs_dir=workdir / "runs")
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        checked = 0
        for section in (*FORM_SECTIONS[1:], FORM_SECTIONS[0]):  # every section, each while on screen
            await show_form_section(pilot, section)
            await pilot.pause()
            for box in app.query_one(f"#group-{section}").query(BoolField):
                shown = box.render().plain.rstrip()
                assert shown == ("▐X▌ true" if box.value else "▐ ▌ false"), box.id
                assert box.size.width >= len(shown), box.id  # nothing clipped to "X…"
                checked += 1
        assert checked >= 5
        box = app.query_one("#data--synthetic", BoolField)
        assert box.value is True
        box.focus()
        await pilot.press("space")
        await pilot.pause()
        assert box.render().plain.rstrip() == "▐ ▌ false" and box.size.width >= len("▐ ▌ false")
        assert app.doc.get("data", "synthetic") is False
