"""An in-process Vertex AI JobService (google.cloud.aiplatform.v1.JobService) on 127.0.0.1 for tests.

`JobServiceClient` reaches it over real gRPC (docs/design.md §8). It records every CustomJob it receives and
moves each job one state per GetCustomJob: QUEUED -> PENDING -> RUNNING (held for `running_gets` Gets)
-> the job's outcome: SUCCEEDED by default, or FAILED / CANCELLED, scripted per job with
`outcomes[job_id]`, for the next jobs with `default_outcome`, or by the job's label `fake-outcome`.
CancelCustomJob moves a job to CANCELLING, and the next Get to CANCELLED. When a FakeLogging is attached,
a job entering RUNNING writes `log_script` (text lines or metric dicts) as its log entries.
Failures for retry tests: `create_errors_after_create` (the job exists but the answer is lost),
`create_errors_before_create`, `get_errors` (each code used once), `create_delay_s`.
"""
from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import grpc
from google.cloud.aiplatform_v1 import (CancelCustomJobRequest, CreateCustomJobRequest, CustomJob,
                                        GetCustomJobRequest, JobState, ListCustomJobsRequest,
                                        ListCustomJobsResponse)
from google.protobuf import empty_pb2
from google.rpc import status_pb2

from tests.fakes.grpc_server import InProcessGrpcServer

_SERVICE = "google.cloud.aiplatform.v1.JobService"
_LABEL_RE = re.compile(r'labels\.([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"')
_OUTCOMES = {"succeeded": JobState.JOB_STATE_SUCCEEDED, "failed": JobState.JOB_STATE_FAILED,
             "cancelled": JobState.JOB_STATE_CANCELLED}
_NEXT = {JobState.JOB_STATE_QUEUED: JobState.JOB_STATE_PENDING,
         JobState.JOB_STATE_PENDING: JobState.JOB_STATE_RUNNING}
_TERMINAL = {JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED}


@dataclass
class FakeVertex(InProcessGrpcServer):
    SERVICE = _SERVICE
    MAX_WORKERS = 8
    logging: Any = None                   # a tests.fakes.logging_server.FakeLogging, optional
    running_gets: int = 1                 # Gets a job stays RUNNING before its outcome
    default_outcome: str = "succeeded"
    log_script: list = field(default_factory=list)  # str (textPayload) or dict (jsonPayload) per entry
    error_message: str = "The replica workerpool0-0 exited with a non-zero status of 1."
    create_error: grpc.StatusCode | None = None      # refuse CreateCustomJob with this code
    # issue 12: lost answers and flaky reads. Each code is used once, in order.
    create_errors_after_create: list = field(default_factory=list)  # job created, then the call fails
    create_errors_before_create: list = field(default_factory=list)  # the call fails, nothing created
    create_delay_s: float = 0.0                       # create the job, then take this long to answer
    get_errors: list = field(default_factory=list)    # GetCustomJob fails with these before answering
    create_deadlines: list = field(default_factory=list)  # seconds the client allowed, per create
    received: list[CustomJob] = field(default_factory=list)   # as sent by the client
    jobs: dict[str, CustomJob] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    address: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1000)
        self._running_left: dict[str, int] = {}
        self._server: grpc.Server | None = None

    # ----- state machine ------------------------------------------------------------------------------
    def _outcome(self, job_id: str, job: CustomJob) -> JobState:
        name = self.outcomes.get(job_id) or job.labels.get("fake-outcome") or self.default_outcome
        return _OUTCOMES[name]

    def _advance(self, job_id: str) -> None:
        job = self.jobs[job_id]
        now = datetime.now(timezone.utc)
        state = job.state
        if state in _NEXT:
            job.state = _NEXT[state]
            if job.state == JobState.JOB_STATE_RUNNING:
                job.start_time = now
                self._running_left[job_id] = self.running_gets
                self._emit_logs(job_id)
        elif state == JobState.JOB_STATE_RUNNING:
            if self._running_left[job_id] > 0:
                self._running_left[job_id] -= 1
                return
            self._finish(job, self._outcome(job_id, job), now)
        elif state == JobState.JOB_STATE_CANCELLING:
            self._finish(job, JobState.JOB_STATE_CANCELLED, now)

    def _finish(self, job: CustomJob, state: JobState, now: datetime) -> None:
        job.state, job.end_time = state, now
        if state == JobState.JOB_STATE_FAILED:
            job.error = status_pb2.Status(code=3, message=self.error_message)
        elif state == JobState.JOB_STATE_CANCELLED:
            job.error = status_pb2.Status(code=1, message="CANCELED")

    def _emit_logs(self, job_id: str) -> None:
        if self.logging is None:
            return
        for item in self.log_script:
            if isinstance(item, dict):
                self.logging.append(job_id, json=item)
            else:
                self.logging.append(job_id, text=str(item))

    def advance_all(self) -> None:
        """Move every job one step (for tests that drive the clock themselves)."""
        with self._lock:
            for job_id in list(self.jobs):
                self._advance(job_id)

    # ----- RPCs ---------------------------------------------------------------------------------------
    def _create(self, request: CreateCustomJobRequest, context) -> CustomJob:
        job = self._create_job(request, context)
        if self.create_delay_s:
            import time

            time.sleep(self.create_delay_s)
        with self._lock:
            if self.create_errors_after_create:
                context.abort(self.create_errors_after_create.pop(0), "the answer was lost (fake)")
        return job

    def _create_job(self, request: CreateCustomJobRequest, context) -> CustomJob:
        with self._lock:
            self.requests.append(("create", request))
            self.create_deadlines.append(context.time_remaining())
            if self.create_error is not None:
                context.abort(self.create_error, "create refused by the fake")
            if self.create_errors_before_create:
                context.abort(self.create_errors_before_create.pop(0), "service unavailable (fake)")
            self.received.append(CustomJob(request.custom_job))
            job = CustomJob(request.custom_job)
            job_id = str(next(self._ids))
            job.name = f"{request.parent}/customJobs/{job_id}"
            job.state = JobState.JOB_STATE_QUEUED
            job.create_time = job.update_time = datetime.now(timezone.utc)
            self.jobs[job_id] = job
            return CustomJob(job)

    def _job_id(self, name: str, context) -> str:
        job_id = name.rsplit("/", 1)[-1]
        if job_id not in self.jobs:
            context.abort(grpc.StatusCode.NOT_FOUND, f"CustomJob {name} not found")
        return job_id

    def _get(self, request: GetCustomJobRequest, context) -> CustomJob:
        with self._lock:
            self.requests.append(("get", request))
            if self.get_errors:
                context.abort(self.get_errors.pop(0), "transient failure (fake)")
            job_id = self._job_id(request.name, context)
            self._advance(job_id)
            return CustomJob(self.jobs[job_id])

    def _list(self, request: ListCustomJobsRequest, context) -> ListCustomJobsResponse:
        with self._lock:
            self.requests.append(("list", request))
            wanted = dict(_LABEL_RE.findall(request.filter))
            hits = [j for j in self.jobs.values()
                    if j.name.startswith(request.parent + "/")
                    and all(j.labels.get(k) == v for k, v in wanted.items())]
            hits.sort(key=lambda j: j.create_time, reverse=True)
            start = int(request.page_token or 0)
            size = request.page_size or 100
            token = str(start + size) if start + size < len(hits) else ""
            return ListCustomJobsResponse(custom_jobs=[CustomJob(j) for j in hits[start:start + size]],
                                          next_page_token=token)

    def _cancel(self, request: CancelCustomJobRequest, context) -> empty_pb2.Empty:
        with self._lock:
            self.requests.append(("cancel", request))
            job = self.jobs[self._job_id(request.name, context)]
            if job.state in _TERMINAL:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"job is already {JobState(job.state).name}")
            job.state = JobState.JOB_STATE_CANCELLING
            return empty_pb2.Empty()

    # ----- lifecycle ----------------------------------------------------------------------------------
    def _handlers(self) -> dict:
        def unary(fn, req_type, serialize):
            return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req_type.deserialize,
                                                       response_serializer=serialize)

        return {
            "CreateCustomJob": unary(self._create, CreateCustomJobRequest, CustomJob.serialize),
            "GetCustomJob": unary(self._get, GetCustomJobRequest, CustomJob.serialize),
            "ListCustomJobs": unary(self._list, ListCustomJobsRequest, ListCustomJobsResponse.serialize),
            # Empty is a raw protobuf message, not a proto-plus type.
            "CancelCustomJob": unary(self._cancel, CancelCustomJobRequest,
                                     lambda m: m.SerializeToString()),
        }
