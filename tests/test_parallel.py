"""core.parallel.ordered_map: the thread pool that renders synthetic cards and fills the uint8 caches."""
from __future__ import annotations

import hashlib
import threading
import time

import pytest

from core.parallel import ordered_map
from core.synth.dataset import generate


def test_results_come_back_in_input_order_even_when_later_items_finish_first():
    def slow_for_small(i):
        time.sleep(0.002 * (20 - i))
        return i * i

    assert list(ordered_map(slow_for_small, range(20), workers=4)) == [i * i for i in range(20)]


def test_the_work_runs_on_more_than_one_thread():
    seen, barrier = set(), threading.Barrier(2, timeout=5)

    def meet(i):  # two items must be in flight at once to pass the barrier
        seen.add(threading.get_ident())
        barrier.wait()
        return i

    assert list(ordered_map(meet, range(4), workers=2)) == [0, 1, 2, 3]
    assert len(seen) == 2


def test_the_first_error_is_raised_and_the_rest_of_a_long_input_is_dropped():
    started = []

    def fail_at_3(i):
        started.append(i)
        if i == 3:
            raise ValueError("img/c0003_front.jpg: cannot decode image")
        time.sleep(0.001)
        return i

    with pytest.raises(ValueError, match="c0003"):
        list(ordered_map(fail_at_3, range(10_000), workers=2))
    assert len(started) < 100  # bounded look-ahead, and nothing queued runs after the error


def test_one_worker_runs_in_the_calling_thread():
    caller = threading.get_ident()
    assert list(ordered_map(lambda i: threading.get_ident() == caller, range(3), workers=1)) == [True] * 3


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_set_generated_on_threads_is_byte_identical_to_one_generated_serially(tmp_path, monkeypatch):
    import core.synth.dataset as dataset

    generate(tmp_path / "threads", 24, seed=5, size=(40, 56))
    monkeypatch.setattr(dataset, "ordered_map", lambda fn, items: map(fn, items))
    generate(tmp_path / "serial", 24, seed=5, size=(40, 56))
    assert _digest(tmp_path / "threads") == _digest(tmp_path / "serial")
