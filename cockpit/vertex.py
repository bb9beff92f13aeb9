"""Vertex AI custom jobs through the GAPIC `aiplatform_v1.JobServiceClient` (not the slow high-level SDK).

`build_custom_job` turns a validated preset into the CustomJob the API receives (pure, no network: it also
feeds `--dry-run`). `VertexBackend` implements `cockpit.backend.JobBackend`: create, get, list (only jobs
this tool labelled), cancel, logs (cockpit.logs) and pull (cockpit.gcs).
"""
from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from cockpit import clients  # noqa: F401  (sets GRPC_VERBOSITY before grpc loads)
from cockpit.backend import JobInfo, LogLine
from cockpit.errors import EXIT_SUBMIT, EXIT_USAGE, CockpitError
from core.config import Config, parse_duration

COCKPIT_LABEL = "psa-cockpit"   # every job this tool submits carries psa-cockpit=1; `list` filters on it
PRESET_LABEL = "psa-preset"
# One random id per submit, as a label: before a create is retried we look for a job carrying it, so a
# create that reached the service but whose answer was lost never becomes a second paid job.
REQUEST_LABEL = "psa-request-id"
CREATE_DEADLINE_S = 60.0        # per CreateCustomJob attempt
CREATE_ATTEMPTS = 4
# Transient errors (UNAVAILABLE, DEADLINE_EXCEEDED) of reads are retried with exponential backoff by
# google.api_core's Retry for up to RETRY_TIMEOUT_S; tests shrink these.
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 30.0
RETRY_TIMEOUT_S = 300.0
TRAIN_MODULE = "core.train"     # the image's ENTRYPOINT is ["python", "-m", "core.train"]


DEFAULT_STATE_POLL_S = 15.0   # GetCustomJob while following a job; PSA_STATE_POLL_S overrides (tests)


def state_poll_s() -> float:
    """Seconds between job-state checks while following (CLI and TUI alike)."""
    import os

    return float(os.environ.get("PSA_STATE_POLL_S", DEFAULT_STATE_POLL_S))


def bucket_name(bucket: str) -> str:
    """'gs://b/' or 'b' -> 'b'."""
    return bucket.removeprefix("gs://").strip("/").split("/", 1)[0]


def label_value(text: str) -> str:
    """Any text -> a valid label value (lowercase letters, digits, _ and -, at most 63)."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower())[:63]


def output_directory(cfg: Config, display_name: str) -> str:
    if not cfg.cloud.bucket:
        raise CockpitError(f"{cfg.source}: cloud.bucket is empty; set it to gs://YOUR-BUCKET", EXIT_USAGE)
    return f"gs://{bucket_name(cfg.cloud.bucket)}/psa-runs/{display_name}/"


def container_args(preset_name: str, overrides: list[str]) -> list[str]:
    """Arguments after the image's ENTRYPOINT; the preset file is baked into the image under presets/."""
    args = ["--preset", f"presets/{preset_name}.toml", "--mode", "cloud"]
    for item in overrides:
        args += ["--set", item]
    return args


def job_timeout_s(cfg: Config, catalog: Any = None) -> float:
    """cloud.timeout, cut to what cloud.max_cost_usd buys (cockpit.estimate.budget_timeout_s)."""
    timeout_s = parse_duration(cfg.cloud.timeout, "cloud.timeout")
    if cfg.cloud.max_cost_usd > 0:
        from cockpit.catalog import load_catalog
        from cockpit.estimate import budget_timeout_s

        timeout_s = min(timeout_s, budget_timeout_s(cfg, catalog or load_catalog()))
    return timeout_s


def launch_command(gpus_per_replica: int) -> list[str]:
    """The container command: empty (the image's ENTRYPOINT, one process) for at most one GPU, else
    core.launch, which starts one training process per GPU with torchrun; every replica is one node, so
    the job's world size is replicas x GPUs (core/launch.py)."""
    if gpus_per_replica <= 1:
        return []
    return ["python", "-m", "core.launch", f"--nproc-per-node={gpus_per_replica}", "--"]


def build_custom_job(cfg: Config, preset_name: str, image_uri: str, overrides: list[str],
                     display_name: str, catalog: Any = None) -> Any:
    """The aiplatform_v1.CustomJob for a validated preset. Raises CockpitError(EXIT_USAGE) on bad labels."""
    from google.cloud import aiplatform_v1 as v1

    from cockpit.presets import check_labels

    c = cfg.cloud
    labels = dict(c.labels)
    check_labels(labels, cfg.source or "preset")
    labels[COCKPIT_LABEL] = "1"
    labels.setdefault(PRESET_LABEL, label_value(preset_name))
    # The request id (see VertexBackend.create) also makes the run's folder unique: two submits of one
    # preset in the same second share a display name, and must never share checkpoints or a model.
    request_id = uuid.uuid4().hex
    labels[REQUEST_LABEL] = request_id
    base_dir = output_directory(cfg, f"{display_name}-{request_id[:8]}")

    machine = v1.MachineSpec(machine_type=c.machine_type)
    if c.accelerator_type and c.accelerator_count:
        machine.accelerator_type = v1.AcceleratorType[c.accelerator_type]
        machine.accelerator_count = c.accelerator_count
    # The image's ENTRYPOINT runs `python -m core.train`, so local `docker run` and Vertex agree; with more
    # than one GPU per replica the command starts one process per GPU instead (launch_command).
    # The run's logs, config and report land beside the model and checkpoints, not in the container's
    # disk that disappears with the job; an explicit user override still wins (it comes later).
    run_dir = f"output.dir={base_dir.rstrip('/')}"
    container = v1.ContainerSpec(image_uri=image_uri, command=launch_command(c.accelerator_count),
                                 args=container_args(preset_name, [run_dir, *overrides]),
                                 env=[v1.EnvVar(name="PYTHONUNBUFFERED", value="1")])
    disk = v1.DiskSpec(boot_disk_type=c.boot_disk_type, boot_disk_size_gb=c.boot_disk_size_gb)
    pools = [v1.WorkerPoolSpec(machine_spec=machine, replica_count=1, container_spec=container,
                               disk_spec=disk)]
    if c.replica_count > 1:
        pools.append(v1.WorkerPoolSpec(machine_spec=machine, replica_count=c.replica_count - 1,
                                       container_spec=container, disk_spec=disk))
    strategy = v1.Scheduling.Strategy.SPOT if c.spot else v1.Scheduling.Strategy.STANDARD
    scheduling = v1.Scheduling(
        timeout=timedelta(seconds=job_timeout_s(cfg, catalog)),
        restart_job_on_worker_restart=c.restart_job_on_worker_restart,
        strategy=strategy, disable_retries=False)
    spec = v1.CustomJobSpec(worker_pool_specs=pools, scheduling=scheduling,
                            base_output_directory=v1.GcsDestination(output_uri_prefix=base_dir))
    if c.service_account:
        spec.service_account = c.service_account
    return v1.CustomJob(display_name=display_name[:128], job_spec=spec, labels=labels)


def custom_job_json(job: Any) -> str:
    """The API's JSON form (what `CustomJob.from_json` reads back), for --dry-run."""
    from google.cloud import aiplatform_v1 as v1

    # enum names ("NVIDIA_TESLA_T4", "SPOT") as in the REST API, not proto-plus's default integers
    return v1.CustomJob.to_json(job, indent=2, use_integers_for_enums=False)


def _dt(value: Any) -> datetime | None:
    """proto-plus timestamps come back as datetimes; an unset one is the epoch."""
    if not value or value.timestamp() <= 0:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def job_info(job: Any, catalog: Any = None) -> JobInfo:
    """aiplatform_v1.CustomJob -> cockpit.backend.JobInfo."""
    from google.cloud import aiplatform_v1 as v1

    pools = list(job.job_spec.worker_pool_specs)
    machine = pools[0].machine_spec if pools else v1.MachineSpec()
    accel = v1.AcceleratorType(machine.accelerator_type).name if machine.accelerator_count else ""
    replicas = sum(p.replica_count for p in pools) or 1
    spot = job.job_spec.scheduling.strategy == v1.Scheduling.Strategy.SPOT
    region = job.name.split("/locations/", 1)[1].split("/", 1)[0] if "/locations/" in job.name else ""
    info = JobInfo(
        id=job.name.rsplit("/", 1)[-1], name=job.display_name, state=v1.JobState(job.state).name,
        backend="vertex", resource_name=job.name, machine_type=machine.machine_type,
        accelerator_type=accel, accelerator_count=machine.accelerator_count, replica_count=replicas,
        create_time=_dt(job.create_time), start_time=_dt(job.start_time), end_time=_dt(job.end_time),
        output_dir=job.job_spec.base_output_directory.output_uri_prefix,
        preset=job.labels.get(PRESET_LABEL, ""), error=job.error.message.splitlines()[0]
        if job.error.message else "", labels=dict(job.labels))
    info.hourly_cost_usd = _hourly_cost(catalog, info, region, spot)
    return info


def _hourly_cost(catalog: Any, info: JobInfo, region: str, spot: bool) -> float | None:
    if catalog is None or not info.machine_type:
        return None
    try:
        per_replica = catalog.hourly_price(info.machine_type, info.accelerator_type,
                                           info.accelerator_count, region, spot)
    except CockpitError:  # a machine or region the catalog does not list: cost unknown, not an error
        return None
    return per_replica * info.replica_count


def api_error(action: str, exc: Exception) -> CockpitError:
    """A google.api_core error -> one line (the API's message, without the gRPC debug dump)."""
    # grpc_status_code names what the API said (PERMISSION_DENIED); `code` is the HTTP mapping (FORBIDDEN)
    code = getattr(exc, "grpc_status_code", None) or getattr(exc, "code", None)
    name = getattr(code, "name", None) or (str(code) if code else type(exc).__name__)
    message = getattr(exc, "message", None) or str(exc)
    hint = _API_HINTS.get(name, "")
    return CockpitError(f"{action}: {name}: {message.splitlines()[0] if message else ''}"
                        + (f"; {hint}" if hint else ""), EXIT_SUBMIT)


# What to do about the API errors a user can fix (README.md, "Troubleshooting").
_API_HINTS = {
    "PERMISSION_DENIED": "the account needs roles/aiplatform.user on the project (README: Who may do what)",
    "UNAUTHENTICATED": clients.AUTH_HINT,
    "RESOURCE_EXHAUSTED": "over a quota: request more Custom model training GPU quota for the region, or "
                          "choose another region or GPU (README: Troubleshooting, Quota)",
    "NOT_FOUND": "check cloud.project and cloud.region, and that the Vertex AI API is enabled",
    "UNAVAILABLE": "the service did not answer; check the network and try again",
    "DEADLINE_EXCEEDED": "the service did not answer in time; try again",
}


def call_api(action: str, fn: Callable[[], Any]) -> Any:
    """fn() with any Google API failure turned into one CockpitError line (EXIT_SUBMIT) naming `action`."""
    from google.api_core import exceptions as gexc

    try:
        return fn()
    except gexc.GoogleAPICallError as exc:
        raise api_error(action, exc) from None
    except gexc.RetryError as exc:
        raise CockpitError(f"{action}: gave up retrying: {exc.cause or exc}", EXIT_SUBMIT) from None


class VertexBackend:
    """JobBackend over Vertex AI for one project and region."""

    name = "vertex"

    def __init__(self, cfg: Config | None = None, *, project: str = "", region: str = "",
                 client: Any = None, catalog: Any = None,
                 logging_client_factory: Callable[[], Any] | None = None,
                 storage_client_factory: Callable[[], Any] | None = None):
        self.cfg = cfg
        self.project = project or (cfg.cloud.project if cfg else "")
        self.region = region or (cfg.cloud.region if cfg else "") or "us-central1"
        if not self.project:
            where = cfg.source if cfg else "preset"
            raise CockpitError(f"{where}: cloud.project is empty; set it to your Google Cloud project id")
        self._client = client
        self._catalog = catalog
        self._logging_factory = logging_client_factory or (lambda: clients.logging_client(cfg))
        self._storage_factory = storage_client_factory or (
            lambda: clients.storage_client(cfg, self.project))

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = clients.job_client(self.cfg, self.region)
        return self._client

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            try:
                from cockpit.catalog import load_catalog

                self._catalog = load_catalog()
            except (ImportError, CockpitError):
                self._catalog = False  # unknown prices show as "-"
        return self._catalog or None

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def resource_name(self, job_id: str) -> str:
        return job_id if job_id.startswith("projects/") else f"{self.parent}/customJobs/{job_id}"

    def find_by_request_id(self, request_id: str) -> JobInfo | None:
        """The job this tool created with `request_id` (REQUEST_LABEL), or None when there is none."""
        from google.cloud import aiplatform_v1 as v1

        request = v1.ListCustomJobsRequest(parent=self.parent,
                                           filter=f'labels.{REQUEST_LABEL}="{request_id}"', page_size=10)
        jobs = self._call("look up the job being created",
                          lambda: list(self.client.list_custom_jobs(request=request, retry=_read_retry())))
        return job_info(jobs[0], self.catalog) if jobs else None

    def _call(self, action: str, fn: Callable[[], Any]) -> Any:
        return call_api(action, fn)

    # ----- JobBackend ---------------------------------------------------------------------------------
    def create(self, job: Any, on_request_id: Callable[[str], None] | None = None) -> JobInfo:
        """CreateCustomJob with a deadline; a transient failure is retried only after checking that no
        job with this submit's request id exists (the first attempt may have created it).

        `on_request_id(id)` is told the id before the first attempt (so a Ctrl-C can look the job up).
        """
        import time

        from google.api_core import exceptions as gexc

        request_id = job.labels.get(REQUEST_LABEL) or uuid.uuid4().hex
        job.labels[REQUEST_LABEL] = request_id
        self.last_request_id = request_id
        if on_request_id:
            on_request_id(request_id)
        delay = RETRY_INITIAL_S
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                created = self.client.create_custom_job(parent=self.parent, custom_job=job,
                                                        timeout=CREATE_DEADLINE_S, retry=None)
                return job_info(created, self.catalog)
            except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
                if attempt == CREATE_ATTEMPTS:
                    raise api_error(f"create custom job (tried {attempt} times; no job labelled "
                                    f"{REQUEST_LABEL}={request_id} was found)", exc) from None
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                found = self.find_by_request_id(request_id)
                if found is not None:
                    return found
            except gexc.GoogleAPICallError as exc:
                raise api_error("create custom job", exc) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def submit(self, preset_path: Path, overrides: list[str] | None = None, *, image_uri: str = "",
               display_name: str = "", **_: Any) -> JobInfo:
        """Build the CustomJob for `preset_path` (validated as self.cfg) and create it."""
        if self.cfg is None or not image_uri:
            raise CockpitError("VertexBackend.submit needs the preset's Config and an image_uri")
        name = Path(preset_path).stem
        display_name = display_name or default_display_name(name)
        return self.create(build_custom_job(self.cfg, name, image_uri, list(overrides or []), display_name))

    def get(self, job_id: str) -> JobInfo:
        job = self._call(f"get job {job_id}",
                         lambda: self.client.get_custom_job(name=self.resource_name(job_id),
                                                            retry=_read_retry()))
        return job_info(job, self.catalog)

    def list(self, page_size: int = 100) -> list[JobInfo]:
        from google.cloud import aiplatform_v1 as v1

        request = v1.ListCustomJobsRequest(parent=self.parent, filter=f'labels.{COCKPIT_LABEL}="1"',
                                           page_size=page_size)

        def fetch_all() -> list[Any]:  # the pager follows page tokens
            return list(self.client.list_custom_jobs(request=request, retry=_read_retry()))

        return [job_info(j, self.catalog) for j in self._call("list custom jobs", fetch_all)]

    def cancel(self, job_id: str) -> JobInfo:
        self._call(f"cancel job {job_id}",
                   lambda: self.client.cancel_custom_job(name=self.resource_name(job_id)))
        return self.get(job_id)

    def logs(self, job_id: str, follow: bool = False, stop: threading.Event | None = None,
             **tail_options: Any) -> Iterator[LogLine]:
        """The job's log lines; with follow, live until the job ends (or `stop` is set)."""
        from cockpit.logs import LogTailer, list_entries

        job_id = self.resource_name(job_id).rsplit("/", 1)[-1]
        if not follow:
            return list_entries(self._logging_factory(), self.project, job_id)
        poll_s = tail_options.pop("state_poll_s", None) or state_poll_s()
        if poll_s < 1:  # tests: a fast state poll wants a fast tail watcher too
            tail_options.setdefault("check_interval_s", poll_s)
            tail_options.setdefault("drain_s", poll_s)
        tailer = LogTailer(self.project, job_id, self._logging_factory, stop_event=stop,
                           should_stop=StatePoller(self, job_id, poll_s), **tail_options)
        return iter(tailer)

    def pull(self, job_id: str, to: Path) -> Path:
        from cockpit.gcs import download_prefix

        info = self.get(job_id)
        if not info.output_dir:
            raise CockpitError(f"job {job_id} has no base output directory to pull from")
        model_uri = info.output_dir.rstrip("/") + "/model/"
        count = download_prefix(model_uri, Path(to), client=self._storage_factory())
        if count == 0:
            raise CockpitError(f"job {job_id}: nothing under {model_uri} (state {info.state}); "
                               "the model is exported when training finishes", 1)
        return Path(to)


def _read_retry() -> Any:
    """Reads (Get, List) retried on UNAVAILABLE / DEADLINE_EXCEEDED with exponential backoff."""
    from google.api_core import exceptions as gexc
    from google.api_core import retry as api_retry

    return api_retry.Retry(
        predicate=api_retry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded),
        initial=RETRY_INITIAL_S, maximum=RETRY_MAX_S, multiplier=2.0, timeout=RETRY_TIMEOUT_S)


class StatePoller:
    """`should_stop` for a log tail: true once the job is terminal; asks the API at most every `every_s`."""

    def __init__(self, backend: VertexBackend, job_id: str, every_s: float = 15.0):
        self.backend, self.job_id, self.every_s = backend, job_id, every_s
        self.info: JobInfo | None = None
        self._last = float("-inf")

    def __call__(self) -> bool:
        import time

        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.info = self.backend.get(self.job_id)
        return bool(self.info and self.info.terminal)


def default_display_name(preset_name: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"psa-{label_value(preset_name)}-{now:%Y%m%d-%H%M%S}"
