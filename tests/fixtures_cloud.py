"""Shared pytest fixtures for tests that talk to fake cloud services (registered in conftest.py)."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from tests.fakes.gcs_server import create_bucket, start_fake_gcs


@pytest.fixture(scope="session")
def fake_gcs_server(tmp_path_factory) -> Iterator[str]:
    """One fake-gcs-server per test session (in memory); yields its http://127.0.0.1:P URL."""
    url, stop = start_fake_gcs(tmp_path_factory.mktemp("fake-gcs"))
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def fake_gcs(fake_gcs_server, monkeypatch) -> str:
    """The session's fake-gcs-server with STORAGE_EMULATOR_HOST set for this test; yields the URL.

    Use `fake_gcs_bucket` for a fresh, empty bucket per test.
    """
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs_server)
    return fake_gcs_server


@pytest.fixture
def fake_gcs_bucket(fake_gcs) -> str:
    """A fresh empty bucket on the fake server (STORAGE_EMULATOR_HOST set); yields its name."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    create_bucket(fake_gcs, name)
    return name


@pytest.fixture
def fake_logging(monkeypatch):
    """An in-process Cloud Logging service; PSA_LOGGING_ENDPOINT points at it for this test."""
    from tests.fakes.logging_server import FakeLogging

    with FakeLogging() as server:
        monkeypatch.setenv("PSA_LOGGING_ENDPOINT", server.address)
        yield server


@pytest.fixture
def fake_vertex(fake_logging, monkeypatch):
    """An in-process Vertex JobService wired to `fake_logging`; PSA_VERTEX_ENDPOINT points at it."""
    from tests.fakes.vertex_server import FakeVertex

    with FakeVertex(logging=fake_logging) as server:
        monkeypatch.setenv("PSA_VERTEX_ENDPOINT", server.address)
        yield server


@pytest.fixture
def grader_server(tiny_model_dir):
    """A real core.serve (tiny random model) on 127.0.0.1 over HTTP; yields its base URL."""
    from core.inference import load_model
    from core.serve import Grader, create_app, start_background

    grader = Grader(*load_model(tiny_model_dir), decode_threads=2)
    url, stop = start_background(create_app(grader))
    yield url
    stop()
    grader.close()


@pytest.fixture
def fake_serving(grader_server, monkeypatch):
    """In-process Vertex Model/Endpoint/Prediction services (and a JobService, `.jobs`) on one address that
    PSA_VERTEX_ENDPOINT points at; Predict forwards to `grader_server`, a real core.serve."""
    from tests.fakes.serving_server import FakeServing
    from tests.fakes.vertex_server import FakeVertex

    with FakeServing(jobs=FakeVertex(), predict_url=grader_server + "/predict") as server:
        monkeypatch.setenv("PSA_VERTEX_ENDPOINT", server.address)
        yield server
