"""cockpit.logs: live tail, reconnect, de-duplication, suppression and polling, against the fake Logging
service over real gRPC (LoggingServiceV2Client and its transport, unmodified)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import grpc
import pytest

from cockpit import clients
from cockpit.backend import parse_metric
from cockpit.errors import CockpitError
from cockpit.logs import LogTailer, job_filter, list_entries

JOB = "4242"


def _tailer(**kw) -> LogTailer:
    kw.setdefault("backoff_initial_s", 0.05)
    kw.setdefault("check_interval_s", 0.05)
    kw.setdefault("drain_s", 0.2)
    return LogTailer("test-project", JOB, clients.logging_client, **kw)


class Collector:
    """Runs a tailer in a thread; the test writes entries and waits for lines."""

    def __init__(self, tailer: LogTailer):
        self.tailer, self.lines, self.error = tailer, [], None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for line in self.tailer:
                self.lines.append(line)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            self.error = exc

    def job_texts(self):
        return [l.text for l in self.lines if l.source != "cockpit"]

    def wait_for(self, n: int, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while len(self.job_texts()) < n and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.01)
        return self.job_texts()

    def wait_tailing(self, fake, sessions: int = 1, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while len(fake.tail_requests) < sessions and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # let the session subscribe before the test writes


def test_tail_delivers_text_and_metric_lines(fake_logging):
    stop = threading.Event()
    c = Collector(_tailer(stop_event=stop))
    c.wait_tailing(fake_logging)
    fake_logging.append(JOB, text="loading data", severity=200)
    fake_logging.append(JOB, json={"severity": "INFO", "message": "epoch 1 phase 1", "event": "epoch",
                                   "epoch": 1, "phase": 1, "val_qwk": 0.5})
    fake_logging.append("other-job", text="not ours")
    c.wait_for(2)
    stop.set()
    c.thread.join(5)
    text, metric = c.lines
    assert (text.text, text.severity, text.source, text.payload) == ("loading data", "INFO", "workerpool0-0", None)
    assert metric.text == "epoch 1 phase 1"
    event = parse_metric(metric)
    assert (event.event, event.epoch, event.phase, event.val_qwk) == ("epoch", 1, 1, 0.5)


def test_tail_request_uses_the_job_filter_and_buffer_window(fake_logging):
    stop = threading.Event()
    c = Collector(_tailer(stop_event=stop, buffer_window_s=3))
    c.wait_tailing(fake_logging)
    stop.set()
    c.thread.join(5)
    request = fake_logging.tail_requests[0]
    assert request.filter == 'resource.type="ml_job" AND resource.labels.job_id="4242"'
    assert list(request.resource_names) == ["projects/test-project"]
    assert request.buffer_window == timedelta(seconds=3)


def test_history_written_before_the_tail_opened_comes_first(fake_logging):
    for i in range(3):
        fake_logging.append(JOB, text=f"old {i}")
    stop = threading.Event()
    c = Collector(_tailer(stop_event=stop))
    c.wait_tailing(fake_logging)
    fake_logging.append(JOB, text="new")
    assert c.wait_for(4) == ["old 0", "old 1", "old 2", "new"]
    stop.set()


def test_dropped_stream_reconnects_without_losing_or_duplicating(fake_logging):
    fake_logging.drop_after(3)
    stop = threading.Event()
    tailer = _tailer(stop_event=stop)
    c = Collector(tailer)
    c.wait_tailing(fake_logging)
    for i in range(10):
        fake_logging.append(JOB, text=f"line {i}")
    got = c.wait_for(10)
    c.wait_tailing(fake_logging, sessions=2)
    for i in range(10, 13):   # and the new session is live
        fake_logging.append(JOB, text=f"line {i}")
    got = c.wait_for(13)
    stop.set()
    c.thread.join(5)
    assert got == [f"line {i}" for i in range(13)]
    assert tailer.reconnects == 1
    assert any("reconnecting" in l.text for l in c.lines if l.source == "cockpit")


def test_suppressed_entries_are_reported_as_a_warning(fake_logging):
    stop = threading.Event()
    tailer = _tailer(stop_event=stop)
    c = Collector(tailer)
    c.wait_tailing(fake_logging)
    fake_logging.suppress(7)
    deadline = time.monotonic() + 5
    while not c.lines and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    c.thread.join(5)
    assert c.lines[0].severity == "WARNING"
    assert c.lines[0].text == "[cockpit] Cloud Logging suppressed 7 entries (RATE_LIMIT)"
    assert tailer.suppressed == 7


@pytest.mark.parametrize("code", [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED])
def test_falls_back_to_polling_when_tailing_is_refused(fake_logging, code):
    fake_logging.tail_error = code
    stop = threading.Event()
    tailer = _tailer(stop_event=stop, poll_interval_s=0.1)
    c = Collector(tailer)
    fake_logging.append(JOB, text="a")
    c.wait_for(1)
    fake_logging.append(JOB, text="b")
    got = c.wait_for(2)
    stop.set()
    c.thread.join(5)
    assert got == ["a", "b"]
    assert tailer.mode == "poll"
    assert any(l.text.startswith(f"[cockpit] live tail unavailable ({code.name})") for l in c.lines)


def test_polling_respects_the_interval(fake_logging):
    fake_logging.tail_error = grpc.StatusCode.RESOURCE_EXHAUSTED
    stop = threading.Event()
    c = Collector(_tailer(stop_event=stop, poll_interval_s=0.5))
    time.sleep(1.2)
    stop.set()
    c.thread.join(5)
    assert 2 <= len(fake_logging.list_requests) <= 4


def test_list_entries_follows_pages_oldest_first(fake_logging):
    for i in range(5):
        fake_logging.append(JOB, text=f"e{i}")
    lines = list(list_entries(clients.logging_client(), "test-project", JOB, page_size=2))
    assert [l.text for l in lines] == ["e0", "e1", "e2", "e3", "e4"]
    assert len(fake_logging.list_requests) == 3
    assert fake_logging.list_requests[0].order_by == "timestamp asc"


def test_job_end_stops_the_tail_after_a_final_drain(fake_logging):
    done = threading.Event()
    c = Collector(_tailer(should_stop=done.is_set, drain_s=0.3))
    c.wait_tailing(fake_logging)
    fake_logging.append(JOB, text="training")
    c.wait_for(1)
    done.set()
    fake_logging.append(JOB, text="exported model")   # written as the job ends
    c.thread.join(5)
    assert not c.thread.is_alive()
    assert c.job_texts() == ["training", "exported model"]


def test_stop_event_ends_a_quiet_stream_promptly(fake_logging):
    stop = threading.Event()
    c = Collector(_tailer(stop_event=stop))
    c.wait_tailing(fake_logging)
    t0 = time.monotonic()
    stop.set()
    c.thread.join(5)
    assert not c.thread.is_alive() and time.monotonic() - t0 < 1.0
    assert c.error is None


def test_permission_denied_is_one_line_error(fake_logging):
    fake_logging.tail_error = grpc.StatusCode.PERMISSION_DENIED
    c = Collector(_tailer(history=False))
    c.thread.join(5)
    assert isinstance(c.error, CockpitError)
    assert str(c.error) == "tail logs of job 4242: PERMISSION_DENIED: tail refused by the fake"


def test_dedup_memory_is_bounded():
    tailer = LogTailer("p", JOB, lambda: None, dedup_window=3)
    from cockpit.backend import LogLine
    assert all(tailer._fresh(LogLine(text="x", insert_id=f"i{n}")) for n in range(5))
    assert len(tailer._seen) == 3
    assert not tailer._fresh(LogLine(text="x", insert_id="i4"))


def test_job_filter_adds_task_and_since():
    from datetime import datetime, timezone
    since = datetime(2025, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc)
    assert job_filter("7", "workerpool0-0", since) == (
        'resource.type="ml_job" AND resource.labels.job_id="7" AND '
        'resource.labels.task_name="workerpool0-0" AND timestamp>="2025-01-02T03:04:05.600000Z"')


# The metric line of docs/design.md §4 as the trainer prints it; Cloud Logging stores it as a jsonPayload
# Struct, where every number is a double.
EPOCH_LINE = {"severity": "INFO", "message": "epoch 4 phase 2 val_qwk 0.8700", "event": "epoch", "phase": 2,
              "epoch": 4, "epochs": 10, "step": 1200, "train_loss": 0.41, "val_loss": 0.52, "val_qwk": 0.87,
              "val_mae": 0.31, "lr": 0.00028, "samples_per_s": 412.5, "eta_s": 600.0}


def test_struct_payload_gives_integer_fields_back_as_ints(fake_logging):
    fake_logging.append(JOB, json={**EPOCH_LINE, "confusion": [[3, 0], [1, 2]]})
    stored = fake_logging.entries[0].entry.json_payload
    assert isinstance(stored["epoch"], float)  # the fake stores what Cloud Logging stores: doubles
    (line,) = list(list_entries(clients.logging_client(), "test-project", JOB))
    assert line.payload["phase"] == 2 and type(line.payload["phase"]) is int
    assert [type(line.payload[k]) for k in ("epoch", "epochs", "step")] == [int, int, int]
    assert line.payload["confusion"] == [[3, 0], [1, 2]] and type(line.payload["confusion"][1][0]) is int
    assert type(line.payload["eta_s"]) is float and line.payload["lr"] == 0.00028  # other numbers stay floats
    event = parse_metric(line)
    assert (event.phase, event.epoch, event.epochs, event.step) == (2, 4, 10, 1200)


def test_tui_log_view_shows_a_struct_epoch_line_with_integers(fake_logging):
    from cockpit.tui.logview import format_line

    fake_logging.append(JOB, json=EPOCH_LINE)
    (line,) = list(list_entries(clients.logging_client(), "test-project", JOB))
    shown = format_line(line)
    assert shown.startswith("EPOCH phase 2 epoch 4/10  train_loss 0.41")
