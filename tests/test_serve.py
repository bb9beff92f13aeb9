"""core.serve: the Vertex AI custom-container prediction contract, over real HTTP on 127.0.0.1."""
from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from core.inference import load_model, predict_card
from core.serve import Grader, Limits, create_app, start_background
from tests.fixtures_core import export_random_model


def _post(url: str, body: bytes | dict, path: str = "/predict") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str, path: str = "/health") -> int:
    try:
        with urllib.request.urlopen(url + path, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _b64(path: str) -> dict:
    return {"b64": base64.b64encode(Path(path).read_bytes()).decode()}


def _instance(front: str, back: str) -> dict:
    return {"front": _b64(front), "back": _b64(back)}


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture
def server(tiny_model):
    grader = Grader(*tiny_model, limits=Limits(max_instances=4, max_image_bytes=20_000), decode_threads=2)
    url, stop = start_background(create_app(grader))
    yield url, grader
    stop()
    grader.close()


def test_health_is_200_with_the_sides_the_model_reads(server):
    url, _ = server
    assert _get(url) == 200
    assert _get(url, "/nowhere") == 404


def test_predict_round_trips_the_fields_core_predict_prints(server, tiny_model, card_scans):
    url, _ = server
    status, body = _post(url, {"instances": [_instance(*card_scans[0]), _instance(*card_scans[1])]})
    assert status == 200, body
    want = [predict_card(*tiny_model, f, b) for f, b in card_scans]
    got = body["predictions"]
    assert [p["grade"] for p in got] == [w["grade"] for w in want]
    for g, w in zip(got, want):
        assert set(g) == set(w)
        assert g["expected_grade"] == pytest.approx(w["expected_grade"], abs=1e-4)
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=2e-4)
        # the contract's shape: 10 floats for grades 1..10, the edge estimate, both sides' centering
        assert len(g["probabilities"]) == 10 and 0 <= g["edge"] <= 1 and set(g["centering"]) == {"front", "back"}


@pytest.mark.parametrize("body, expected", [
    (b"{not json", "invalid JSON"),
    ({"instances": []}, "at least one instance"),
    ({"nothing": 1}, "instances"),
    ({"instances": [{"back": {"b64": "AAAA"}}]}, "instances[0]: missing 'front'"),
    ({"instances": [{"front": "raw", "back": {"b64": "AAAA"}}]}, 'instances[0].front: expected {"b64"'),
    ({"instances": [{"front": {"b64": "%%%notbase64"}, "back": {"b64": "AAAA"}}]}, "instances[0].front: bad base64"),
    ({"instances": [{"front": {"b64": "AAAA"}, "back": {"b64": "aGVsbG8"}}]}, "instances[0].back: bad base64"),
    ({"instances": [{"front": {"b64": "AAAA"}, "back": {"b64": "AA=AA"}}]}, "instances[0].back: bad base64"),
    ({"instances": [{"front": {"b64": "AAAA\u00e9"}, "back": {"b64": "AAAA"}}]}, "instances[0].front: bad base64"),
    ({"instances": [{"front": {"b64": base64.b64encode(b"hello").decode()}, "back": {"b64": "AAAA"}}]},
     "instances[0].front: not an image"),
    ({"instances": [{"front": {"b64": base64.b64encode(bytes(30_000)).decode()}, "back": {"b64": "AAAA"}}]},
     "instances[0].front: image over the size limit of 20000 bytes"),
    ({"instances": [{}] * 5}, "too many instances: 5, at most 4"),
])
def test_bad_input_is_400_naming_the_problem_and_the_server_keeps_serving(server, card_scans, body, expected):
    url, _ = server
    status, reply = _post(url, body)
    assert status == 400 and expected in reply["error"], reply
    assert "\n" not in reply["error"]
    status, reply = _post(url, {"instances": [_instance(*card_scans[0])]})
    assert status == 200 and len(reply["predictions"]) == 1


def test_the_second_instance_is_named_when_it_is_the_bad_one(server, card_scans):
    url, _ = server
    front, _ = card_scans[0]
    status, reply = _post(url, {"instances": [_instance(*card_scans[0]),
                                              {"front": _b64(front), "back": {"b64": "aGVsbG8="}}]})
    assert status == 400 and reply["error"].startswith("instances[1].back: not an image"), reply


class _Crashing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def forward(self, **_):
        raise RuntimeError("CUDA error: out of memory\nsecond line of a long trace")


def test_a_model_crash_is_a_500_with_one_line_logged_and_the_server_recovers(server, card_scans, caplog):
    url, grader = server
    real = grader.model
    grader.model = _Crashing()
    with caplog.at_level(logging.ERROR, logger="core.serve"):
        status, reply = _post(url, {"instances": [_instance(*card_scans[0])]})
    assert status == 500 and reply["error"] == "prediction failed: RuntimeError: CUDA error: out of memory"
    assert any("out of memory" in r.getMessage() for r in caplog.records)
    grader.model = real
    assert _post(url, {"instances": [_instance(*card_scans[0])]})[0] == 200


def test_back_only_model_takes_the_back_alone(tmp_path, card_scans):
    grader = Grader(*load_model(export_random_model(tmp_path / "m", sides=("back",))), decode_threads=1)
    url, stop = start_background(create_app(grader))
    try:
        status, reply = _post(url, {"instances": [{"back": _b64(card_scans[0][1])}]})
        assert status == 200 and 1 <= reply["predictions"][0]["grade"] <= 10
    finally:
        stop()
        grader.close()


def test_concurrent_requests_are_graded_together(tiny_model, card_scans):
    """Requests waiting while the model is busy join one batch; each still gets its own predictions."""
    grader = Grader(*tiny_model, decode_threads=2)
    release = __import__("threading").Event()
    sizes = []
    real_run = grader._run

    def slow_run(batch):
        release.wait(10)
        sizes.append(sum(len(t) for t, _ in batch))
        real_run(batch)

    grader._run = slow_run
    cards = [grader.decode_card(0, {s: Path(p).read_bytes() for s, p in zip(("front", "back"), card_scans[i])})
             for i in range(2)]
    futures = [grader.submit([cards[0]]), grader.submit([cards[1]]), grader.submit(cards)]
    release.set()
    results = [f.result(timeout=60) for f in futures]
    grader.close()
    assert [len(r) for r in results] == [1, 1, 2]
    assert sum(sizes) == 4 and len(sizes) <= 2  # the requests that waited shared one batch
    assert results[2][0]["grade"] == results[0][0]["grade"]
