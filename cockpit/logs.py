"""Live Cloud Logging tail of a Vertex AI job, with reconnects, de-duplication and a polling fallback.

Facts this relies on (docs/design.md §6, §8):
- TailLogEntries streams only entries written after the session opens, at most 10 sessions per project,
  and there is no reconnect in the client library. So every (re)connect opens the stream first and then
  lists what was written meanwhile (since the last seen timestamp minus an overlap); duplicates are
  dropped by insert_id, remembered in a bounded LRU window.
- The sync GAPIC `tail_log_entries()` pre-reads the first response, so nothing could cancel it while the
  job is quiet. We call the transport's raw stub instead: the returned call is an iterator and a future
  whose `cancel()` ends a blocked read at once.
- ListLogEntries reads are limited to 60 requests per minute per project (shared with the console and
  gcloud), so the fallback polls every `poll_interval_s` (default 5 s = 12 requests a minute).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from cockpit import clients  # noqa: F401  (sets GRPC_VERBOSITY before grpc loads)
from cockpit.backend import LogLine
from cockpit.errors import EXIT_SUBMIT, CockpitError

READ_QUOTA_PER_MINUTE = 60  # ListLogEntries requests per minute per project


def job_filter(job_id: str, task_name: str | None = None, since: datetime | None = None) -> str:
    parts = ['resource.type="ml_job"', f'resource.labels.job_id="{job_id}"']
    if task_name:
        parts.append(f'resource.labels.task_name="{task_name}"')
    if since is not None:
        parts.append(f'timestamp>="{_rfc3339(since)}"')
    return " AND ".join(parts)


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _severity_name(value: int) -> str:
    from google.logging.type import log_severity_pb2

    try:
        return log_severity_pb2.LogSeverity.Name(int(value))  # LogEntry.severity is a plain int
    except ValueError:
        return str(value)


def entry_to_line(entry: Any) -> LogLine:
    """A logging_v2 LogEntry -> LogLine; jsonPayload (a metric line) also lands in `payload`."""
    from google.cloud.logging_v2.types import LogEntry
    from google.protobuf.json_format import MessageToDict

    pb = LogEntry.pb(entry)
    payload: dict | None = None
    if pb.HasField("json_payload"):
        payload = MessageToDict(pb.json_payload)
        text = str(payload.get("message") or json.dumps(payload, sort_keys=True))
    else:
        text = pb.text_payload.rstrip("\n")
        if text.startswith("{"):  # a metric line that Cloud Logging did not parse into jsonPayload
            try:
                parsed = json.loads(text)
                payload = parsed if isinstance(parsed, dict) and "event" in parsed else None
            except json.JSONDecodeError:
                payload = None
    stamp = entry.timestamp if pb.HasField("timestamp") else None
    return LogLine(text=text, severity=_severity_name(pb.severity), timestamp=stamp,
                   insert_id=pb.insert_id, payload=payload,
                   source=pb.resource.labels.get("task_name", ""))


def list_entries(client: Any, project: str, job_id: str, *, since: datetime | None = None,
                 task_name: str | None = None, page_size: int = 1000) -> Iterator[LogLine]:
    """Every entry of the job (oldest first), following page tokens; one request per page."""
    from google.api_core import exceptions as gexc

    request = {"resource_names": [f"projects/{project}"], "filter": job_filter(job_id, task_name, since),
               "order_by": "timestamp asc", "page_size": page_size}
    try:
        for entry in client.list_log_entries(request=request):
            yield entry_to_line(entry)
    except gexc.GoogleAPICallError as exc:
        from cockpit.vertex import api_error

        raise api_error(f"read logs of job {job_id}", exc) from None


def _note(text: str, severity: str = "WARNING") -> LogLine:
    """A line from the cockpit itself (not from the job)."""
    return LogLine(text=text, severity=severity, timestamp=datetime.now(timezone.utc), source="cockpit")


class LogTailer:
    """Iterate over a job's log lines live. Ends when `stop_event` is set (at once) or when
    `should_stop()` returns true (the job is terminal): then it keeps reading for `drain_s` and makes one
    last ListLogEntries pass, so the job's final lines are not lost.

    `client_factory()` returns a LoggingServiceV2Client (cockpit.clients.logging_client).
    """

    _FATAL = ("PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_ARGUMENT", "NOT_FOUND")
    _NO_TAIL = ("RESOURCE_EXHAUSTED", "UNIMPLEMENTED")  # e.g. the 10-session limit: poll instead

    def __init__(self, project: str, job_id: str, client_factory: Callable[[], Any], *,
                 task_name: str | None = None, buffer_window_s: float = 2.0, poll_interval_s: float = 5.0,
                 should_stop: Callable[[], bool] | None = None, stop_event: threading.Event | None = None,
                 check_interval_s: float = 1.0, drain_s: float | None = None,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 30.0, max_failures: int = 5,
                 overlap_s: float = 10.0, dedup_window: int = 20000, history: bool = True):
        if not 0 <= buffer_window_s <= 60:
            raise CockpitError(f"buffer_window_s = {buffer_window_s} must be within 0..60 seconds")
        self.project, self.job_id, self.task_name = project, job_id, task_name
        self._client_factory = client_factory
        self.buffer_window_s, self.poll_interval_s = buffer_window_s, poll_interval_s
        self._should_stop, self._stop_event = should_stop, stop_event or threading.Event()
        self.check_interval_s = check_interval_s
        self.drain_s = buffer_window_s + 1.0 if drain_s is None else drain_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.max_failures, self.overlap = max_failures, timedelta(seconds=overlap_s)
        self.history = history
        self.mode = "tail"        # "poll" after falling back
        self.reconnects = 0
        self.suppressed = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedup_window = dedup_window
        self._last_ts: datetime | None = None
        self._stopping = threading.Event()   # the consumer should wind down
        self._drain = False                  # ... with a final list pass (job ended) or not (user stop)
        self._watch_error: BaseException | None = None
        self._lock = threading.Lock()
        self._call: Any = None

    # ----- the consumer side --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[LogLine]:
        client = self._client_factory()
        watcher = threading.Thread(target=self._watch, name="psa-log-watch", daemon=True)
        watcher.start()
        try:
            yield from self._run(client)
            if self._watch_error is not None:
                raise self._watch_error
        finally:
            self._stopping.set()
            self._cancel_call()

    def _run(self, client: Any) -> Iterator[LogLine]:
        failures, backoff, first = 0, self.backoff_initial_s, True
        while not self._stopping.is_set():
            if self.mode == "poll":
                yield from self._backfill(client)
                self._stopping.wait(self.poll_interval_s)
                continue
            import grpc

            try:
                call = self._open(client)
                if self.history or not first:
                    yield from self._backfill(client)
                first = False
                for response in call:
                    if response.entries:
                        failures, backoff = 0, self.backoff_initial_s
                    yield from self._handle(response)
                code = "OK"  # the server ended the session (they last at most about an hour)
            except grpc.RpcError as exc:
                code = exc.code().name
                if self._stopping.is_set() and code == "CANCELLED":
                    break
                if code in self._FATAL:
                    raise CockpitError(f"tail logs of job {self.job_id}: {code}: {exc.details()}",
                                       EXIT_SUBMIT) from None
                if code in self._NO_TAIL:
                    self.mode = "poll"
                    yield _note(f"[cockpit] live tail unavailable ({code}); polling logs every "
                                f"{self.poll_interval_s:g} s")
                    continue
            if self._stopping.is_set():
                break
            failures += 1
            if failures > self.max_failures:
                self.mode = "poll"
                yield _note(f"[cockpit] live tail keeps dropping ({code}); polling logs every "
                            f"{self.poll_interval_s:g} s")
                continue
            self.reconnects += 1
            yield _note(f"[cockpit] log stream ended ({code}); reconnecting in {backoff:g} s", "INFO")
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)
        if self._drain:
            yield from self._backfill(client)

    def _open(self, client: Any) -> Any:
        from google.cloud.logging_v2.types import TailLogEntriesRequest

        request = TailLogEntriesRequest(
            resource_names=[f"projects/{self.project}"], filter=job_filter(self.job_id, self.task_name),
            buffer_window=timedelta(seconds=self.buffer_window_s))
        ended = threading.Event()

        def requests() -> Iterator[Any]:
            yield request
            ended.wait()  # keep the request side open: a half-closed stream may end the session

        call = client.transport.tail_log_entries(requests())  # the raw stub: cancellable at once
        call.add_done_callback(lambda _: ended.set())
        with self._lock:
            self._call = call
            if self._stopping.is_set():
                call.cancel()
        return call

    def _backfill(self, client: Any) -> Iterator[LogLine]:
        """What was written since the last seen entry (all of it the first time)."""
        since = self._last_ts - self.overlap if self._last_ts else None
        try:
            for line in list_entries(client, self.project, self.job_id, since=since,
                                     task_name=self.task_name):
                if self._fresh(line):
                    yield line
        except CockpitError as exc:
            # A refused read (quota) must not end a follow: say so and try again on the next round.
            yield _note(f"[cockpit] {exc.message}")

    def _handle(self, response: Any) -> Iterator[LogLine]:
        for info in response.suppression_info:
            self.suppressed += info.suppressed_count
            reason = type(info).Reason(info.reason).name
            yield _note(f"[cockpit] Cloud Logging suppressed {info.suppressed_count} entries ({reason})")
        for entry in response.entries:
            line = entry_to_line(entry)
            if self._fresh(line):
                yield line

    def _fresh(self, line: LogLine) -> bool:
        """True the first time an entry is seen; remembers a bounded window of ids."""
        key = line.insert_id or f"{line.timestamp}|{line.source}|{line.text}"
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._dedup_window:
            self._seen.popitem(last=False)
        if line.timestamp and (self._last_ts is None or line.timestamp > self._last_ts):
            self._last_ts = line.timestamp
        return True

    # ----- the watcher side ---------------------------------------------------------------------------
    def _watch(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._stop_event.is_set():
                    break
                if self._should_stop is not None and self._should_stop():
                    # the job ended: give in-flight entries time to arrive, then drain by listing
                    if not self._stop_event.wait(self.drain_s):
                        self._drain = True
                    break
                if self._stop_event.wait(self.check_interval_s):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, re-raised there
            self._watch_error = exc
        self._stopping.set()
        self._cancel_call()

    def _cancel_call(self) -> None:
        with self._lock:
            if self._call is not None:
                self._call.cancel()
