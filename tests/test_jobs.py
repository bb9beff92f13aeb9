"""cockpit.jobs: the one place for project resolution, backend choice and job rows (CLI and TUI)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cockpit.backend import JobInfo, JobState
from cockpit.jobs import Backends, format_age, job_row, jobs_table, resolve_project
from cockpit.presets import validate_preset
from cockpit.tui.sections.jobs import cells
from core.config import field_spec, parse_value

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("seconds,text", [(5, "5s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h00"),
                                          (3 * 3600 + 5 * 60, "3h05"), (86400 * 2 + 5, "2d")])
def test_one_age_format(seconds, text):
    assert format_age(seconds) == text


def test_cli_table_and_tui_rows_agree():
    info = JobInfo(id="42", name="psa-cloud-1", state=JobState.RUNNING, backend="vertex",
                   machine_type="n1-standard-8", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1,
                   create_time=NOW - timedelta(minutes=75), start_time=NOW - timedelta(hours=1),
                   hourly_cost_usd=0.73)
    row = job_row(info, NOW)
    assert (row.state, row.machine, row.age, row.cost) == ("RUNNING", "n1-standard-8+1xT4", "1h15", "$0.73")
    tui = cells(info, NOW)
    assert (tui[0], tui[1], str(tui[2]), tui[3], tui[4], tui[5]) == \
        (row.id, row.name, row.state, row.machine, row.age, row.cost)
    assert jobs_table([info], NOW).splitlines()[1].split() == ["42", "psa-cloud-1", "RUNNING",
                                                               "n1-standard-8+1xT4", "1h15", "$0.73"]


def test_project_comes_from_the_flag_then_the_preset_then_the_environment(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    cloud = validate_preset("cloud")                                 # no project in the preset
    mine = validate_preset("cloud", ["cloud.project=from-preset"])
    assert resolve_project(cloud) == "from-env"
    assert resolve_project(mine) == "from-preset"
    assert resolve_project(mine, "from-flag") == "from-flag"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert resolve_project(cloud) == ""


def test_tui_and_cli_reach_vertex_with_the_environments_project(monkeypatch, tmp_path, fake_vertex):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    backends = Backends(tmp_path / "runs")
    jobs, note = backends.list_jobs(validate_preset("cloud"))
    assert (jobs, note) == ([], "")
    assert backends.vertex(validate_preset("cloud")).project == "test-project"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert backends.list_jobs(validate_preset("cloud"))[1].startswith("Vertex AI: set cloud.project")


@pytest.mark.parametrize("text,value", [("yes", True), ("no", False), ("1", True), ("0", False),
                                        ("true", True), ("False", False)])
def test_one_text_parser_takes_yes_no_1_0_for_booleans(text, value):
    assert parse_value(f" {text} ", field_spec("cloud", "spot")) is value


def test_form_and_set_parse_text_the_same_way():
    from cockpit.tui import form

    assert form.parse_value is parse_value  # the form has no parser of its own
    assert parse_value("[64, 96]", field_spec("data", "image_size")) == [64, 96]
    assert parse_value('"gs://b"', field_spec("cloud", "bucket")) == "gs://b"
