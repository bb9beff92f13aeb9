"""Image URI and tag, docker build/push through the stand-in docker (tests/bin/docker), and its errors."""
from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from core.config import config_from_dict
from cockpit.errors import EXIT_BUILD, EXIT_CANCELLED, EXIT_USAGE, CockpitError
from cockpit.image import build_image, git_tag, image_exists, image_uri, push_image

URI = "us-central1-docker.pkg.dev/my-proj/psa/psa-trainer:abc1234"


def test_image_uri_from_the_preset():
    cfg = config_from_dict({"cloud": {"project": "my-proj", "region": "europe-west4", "image": "psa/psa-trainer"}})
    assert image_uri(cfg, "abc1234") == "europe-west4-docker.pkg.dev/my-proj/psa/psa-trainer:abc1234"


def test_image_uri_needs_a_project():
    with pytest.raises(CockpitError) as info:
        image_uri(config_from_dict({}, where="p.toml"), "t")
    assert str(info.value) == "p.toml: cloud.project is empty; the image URI needs it"
    assert info.value.exit_code == EXIT_USAGE


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "one")
    return tmp_path


def _sha(repo):
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_git_tag_is_the_short_sha_of_a_clean_tree(repo):
    assert git_tag(repo) == _sha(repo)


def test_git_tag_marks_a_dirty_tree(repo):
    (repo / "a.txt").write_text("changed")
    assert re.fullmatch(rf"{_sha(repo)}-dirty-[0-9a-f]{{8}}", git_tag(repo))


def test_git_tag_counts_untracked_files_as_dirty(repo):
    (repo / "new.py").write_text("x")  # it would be in the build context
    assert "-dirty-" in git_tag(repo)


def test_dirty_tag_changes_when_the_uncommitted_content_changes(repo):
    # Otherwise a submit would find the old tag in the registry, skip the build and run a stale image.
    (repo / "a.txt").write_text("first edit")
    first = git_tag(repo)
    (repo / "a.txt").write_text("second edit")
    second = git_tag(repo)
    assert first != second and first.split("-dirty-")[0] == second.split("-dirty-")[0]
    (repo / "a.txt").write_text("first edit")
    assert git_tag(repo) == first


def test_git_tag_outside_git_is_nogit(tmp_path):
    assert git_tag(tmp_path) == "nogit"


def test_build_passes_the_argument_list(docker_stub, tmp_path):
    build_image(URI, tmp_path, lambda line: None)
    assert docker_stub.calls() == [["build", "--platform", "linux/amd64", "-f", str(tmp_path / "Dockerfile"),
                                    "-t", URI, str(tmp_path)]]


def test_build_streams_every_line_in_order(docker_stub, tmp_path):
    lines = []
    build_image(URI, tmp_path, lines.append)
    assert lines[0] == '#0 building with "default" instance using docker driver'
    assert lines[-2:] == [f"#4 naming to {URI} done", "#4 DONE 1.1s"]
    assert len(lines) == 12


def test_build_lines_arrive_while_docker_runs(docker_stub, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_STUB_DELAY", "0.05")
    stamps = []
    build_image(URI, tmp_path, lambda line: stamps.append(time.monotonic()))
    assert stamps[-1] - stamps[0] > 0.3  # delivered one by one, not all at the end


def test_push_passes_the_argument_list_and_streams(docker_stub):
    lines = []
    push_image(URI, lines.append)
    assert docker_stub.calls() == [["push", URI]]
    assert lines[0] == "The push refers to repository [us-central1-docker.pkg.dev/my-proj/psa/psa-trainer]"
    assert lines[-1] == "abc1234: digest: sha256:9b2f0c7d1e8a5b3c size: 1573"


def test_image_exists_asks_the_registry(docker_stub):
    assert image_exists(URI) is True
    assert docker_stub.calls() == [["manifest", "inspect", URI]]


def test_image_exists_is_false_for_a_missing_tag(docker_stub):
    docker_stub.mode("missing")
    assert image_exists(URI) is False


def test_docker_missing_from_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CockpitError) as info:
        build_image(URI, tmp_path, lambda line: None)
    assert str(info.value) == ("docker not found on PATH: install Docker (https://docs.docker.com/get-docker/) "
                               "or skip the build with --no-build")
    assert info.value.exit_code == EXIT_BUILD


DAEMON_DOWN = ("the Docker daemon is not running (docker said: Cannot connect to the Docker daemon); "
               "start Docker and retry, or skip the build with --no-build")


@pytest.mark.parametrize("action", ["build", "push", "exists"])
def test_daemon_down(docker_stub, tmp_path, action):
    docker_stub.mode("daemon_down")
    with pytest.raises(CockpitError) as info:
        {"build": lambda: build_image(URI, tmp_path, lambda line: None),
         "push": lambda: push_image(URI, lambda line: None),
         "exists": lambda: image_exists(URI)}[action]()
    assert str(info.value) == DAEMON_DOWN
    assert info.value.exit_code == EXIT_BUILD


def test_push_without_registry_auth_gives_the_gcloud_hint(docker_stub):
    docker_stub.mode("auth")
    with pytest.raises(CockpitError) as info:
        push_image(URI, lambda line: None)
    assert str(info.value) == (f"docker push {URI}: not authenticated to us-central1-docker.pkg.dev; run: "
                               f"gcloud auth configure-docker us-central1-docker.pkg.dev")
    assert info.value.exit_code == EXIT_BUILD


def test_manifest_inspect_without_auth_gives_the_gcloud_hint(docker_stub):
    docker_stub.mode("auth")
    with pytest.raises(CockpitError, match="run: gcloud auth configure-docker us-central1-docker.pkg.dev$"):
        image_exists(URI)


def test_build_error_names_dockers_error_line(docker_stub, tmp_path):
    docker_stub.mode("build_error")
    lines = []
    with pytest.raises(CockpitError) as info:
        build_image(URI, tmp_path, lines.append)
    assert str(info.value) == ('docker build failed (exit 1): ERROR: failed to solve: process "/bin/sh -c pip '
                               'install --no-cache-dir torchh" did not complete successfully: exit code: 1')
    assert info.value.exit_code == EXIT_BUILD
    assert "#3 0.512 ERROR: Could not find a version that satisfies the requirement torchh" in lines


def test_cancel_stops_a_running_build(docker_stub, tmp_path):
    docker_stub.mode("slow")
    cancel = threading.Event()
    lines = []

    def on_line(line):
        lines.append(line)
        if len(lines) == 8:
            cancel.set()

    started = time.monotonic()
    with pytest.raises(CockpitError) as info:
        build_image(URI, tmp_path, on_line, cancel=cancel)
    assert info.value.exit_code == EXIT_CANCELLED
    assert str(info.value) == f"docker build of {URI} cancelled"
    assert time.monotonic() - started < 10
