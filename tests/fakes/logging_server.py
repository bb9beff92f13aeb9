"""An in-process Cloud Logging API (google.logging.v2.LoggingServiceV2) on 127.0.0.1 for tests.

It speaks the real wire protocol, so `LoggingServiceV2Client` and its raw transport stubs talk to it
unchanged. What it implements, like the real service:
- ListLogEntries: the job filter of docs/design.md §6 plus `timestamp>="..."`, `order_by` "timestamp asc|desc",
  page_size/page_token paging. Every request is counted (`list_requests`) so tests can check the quota.
- TailLogEntries (stream-stream): streams entries appended after the session opened (a live tail does not
  replay history). Test hooks: `drop_after(k)` aborts the next session with UNAVAILABLE after k entries,
  `suppress(n)` sends a `suppression_info` response, `tail_error` refuses sessions with a status code.
Entries are appended by tests (or by the fake Vertex server) with `append(job_id, ...)` at any time.
"""
from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import grpc
from google.api import monitored_resource_pb2
from google.cloud.logging_v2.types import (ListLogEntriesRequest, ListLogEntriesResponse, LogEntry,
                                           TailLogEntriesRequest, TailLogEntriesResponse)

from tests.fakes.grpc_server import InProcessGrpcServer

_SERVICE = "google.logging.v2.LoggingServiceV2"
_JOB_RE = re.compile(r'resource\.labels\.job_id\s*=\s*"([^"]*)"')
_TASK_RE = re.compile(r'resource\.labels\.task_name\s*=\s*"([^"]*)"')
_TS_RE = re.compile(r'timestamp\s*>=\s*"([^"]*)"')


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class _Query:
    job_id: str | None
    task_name: str | None
    since: datetime | None

    @classmethod
    def parse(cls, text: str) -> "_Query":
        job, task, ts = _JOB_RE.search(text), _TASK_RE.search(text), _TS_RE.search(text)
        return cls(job.group(1) if job else None, task.group(1) if task else None,
                   _parse_ts(ts.group(1)) if ts else None)

    def matches(self, entry: LogEntry, when: datetime) -> bool:
        labels = entry.resource.labels
        if self.job_id is not None and labels.get("job_id") != self.job_id:
            return False
        if self.task_name is not None and labels.get("task_name") != self.task_name:
            return False
        return self.since is None or when >= self.since


@dataclass
class _Stored:
    entry: LogEntry
    when: datetime


@dataclass
class FakeLogging(InProcessGrpcServer):
    SERVICE = _SERVICE
    MAX_WORKERS = 16
    project: str = "test-project"
    entries: list[_Stored] = field(default_factory=list)
    list_requests: list[ListLogEntriesRequest] = field(default_factory=list)
    tail_requests: list[TailLogEntriesRequest] = field(default_factory=list)
    tail_error: grpc.StatusCode | None = None   # refuse every tail session with this code
    address: str = ""

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._drops: list[int] = []         # per upcoming session: abort after k entries
        self._suppressions: list[int] = []  # counts to report on live sessions
        self.active_tails = 0
        self._server: grpc.Server | None = None

    # ----- test hooks ---------------------------------------------------------------------------------
    def append(self, job_id: str, text: str | None = None, json: dict | None = None, *,
               severity: int = 200, task_name: str = "workerpool0-0", insert_id: str | None = None,
               when: datetime | None = None) -> LogEntry:
        """Write one entry for a Vertex job (textPayload or jsonPayload) and wake live tails."""
        when = when or datetime.now(timezone.utc)
        entry = LogEntry(
            log_name=f"projects/{self.project}/logs/workerpool0-0",
            resource=monitored_resource_pb2.MonitoredResource(
                type="ml_job", labels={"job_id": job_id, "task_name": task_name}),
            severity=severity, insert_id=insert_id or f"id{next(self._ids):06d}", timestamp=when)
        if json is not None:
            entry.json_payload = json
        else:
            entry.text_payload = text or ""
        with self._cond:
            self.entries.append(_Stored(entry, when))
            self._cond.notify_all()
        return entry

    def drop_after(self, k: int) -> None:
        """The next tail session aborts with UNAVAILABLE after sending k entries."""
        with self._cond:
            self._drops.append(k)

    def suppress(self, count: int) -> None:
        """Live tail sessions report `count` entries suppressed (RATE_LIMIT)."""
        with self._cond:
            self._suppressions.append(count)
            self._cond.notify_all()

    # ----- RPCs ---------------------------------------------------------------------------------------
    def _list(self, request: ListLogEntriesRequest, context) -> ListLogEntriesResponse:
        with self._cond:
            self.list_requests.append(request)
            query = _Query.parse(request.filter)
            hits = [s for s in self.entries if query.matches(s.entry, s.when)]
        hits.sort(key=lambda s: s.when, reverse="desc" in request.order_by.lower())
        start = int(request.page_token or 0)
        size = request.page_size or 1000
        page = hits[start:start + size]
        token = str(start + size) if start + size < len(hits) else ""
        return ListLogEntriesResponse(entries=[s.entry for s in page], next_page_token=token)

    def _tail(self, request_iterator, context):
        context.send_initial_metadata(())  # the client's stream starts before any entry exists
        first = next(request_iterator)
        with self._cond:
            self.tail_requests.append(first)
            if self.tail_error is not None:
                code = self.tail_error
            else:
                code = None
                drop = self._drops.pop(0) if self._drops else None
                cursor = len(self.entries)  # live tail: only what arrives from now on
                seen_suppressions = len(self._suppressions)
                self.active_tails += 1
        if code is not None:
            context.abort(code, "tail refused by the fake")
        query = _Query.parse(first.filter)
        sent = 0
        try:
            while context.is_active():
                with self._cond:
                    self._cond.wait_for(lambda: len(self.entries) > cursor
                                        or len(self._suppressions) > seen_suppressions
                                        or not context.is_active(), timeout=0.2)
                    new, cursor = self.entries[cursor:], len(self.entries)
                    supp, seen_suppressions = (self._suppressions[seen_suppressions:],
                                               len(self._suppressions))
                for count in supp:
                    yield TailLogEntriesResponse(suppression_info=[TailLogEntriesResponse.SuppressionInfo(
                        reason=TailLogEntriesResponse.SuppressionInfo.Reason.RATE_LIMIT,
                        suppressed_count=count)])
                for stored in new:
                    if not query.matches(stored.entry, stored.when):
                        continue
                    if drop is not None and sent >= drop:
                        context.abort(grpc.StatusCode.UNAVAILABLE, "tail dropped by the fake")
                    yield TailLogEntriesResponse(entries=[stored.entry])
                    sent += 1
        finally:
            with self._cond:
                self.active_tails -= 1

    # ----- lifecycle ----------------------------------------------------------------------------------
    def _handlers(self) -> dict:
        return {
            "ListLogEntries": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=ListLogEntriesRequest.deserialize,
                response_serializer=ListLogEntriesResponse.serialize),
            "TailLogEntries": grpc.stream_stream_rpc_method_handler(
                self._tail, request_deserializer=TailLogEntriesRequest.deserialize,
                response_serializer=TailLogEntriesResponse.serialize),
        }
