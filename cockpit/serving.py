"""Serve a trained grader on Vertex AI: upload the Model, create or reuse an Endpoint, deploy, predict,
list, undeploy; and predict against a local `python -m core.serve` over HTTP (README "Serve the grader").

One engine for the CLI (cockpit/cli_serving.py) and the TUI (Jobs section): both call `ServingService`.
It talks to the GAPIC ModelService, EndpointService and PredictionService clients built by
cockpit/clients.py (endpoints only from the environment). The serving image is the Dockerfile's `serve`
target; the Model points Vertex AI at it with the routes and port of core/serve.py, and its artifact_uri
is the job's exported model directory, which Vertex AI hands the container as AIP_STORAGE_URI.

A deployed model bills for its machines every hour it stays deployed, requests or not: `plan` prices it
from the catalog before anything is created, and callers show that and ask first.
"""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cockpit import clients
from cockpit.errors import EXIT_SUBMIT, EXIT_USAGE, CockpitError
from cockpit.vertex import COCKPIT_LABEL, call_api, label_value

SERVE_TARGET = "serve"            # the Dockerfile stage of the serving image
SERVE_PORT = 8080                 # core.serve reads AIP_HTTP_PORT; Vertex AI sets it to this port
HEALTH_ROUTE, PREDICT_ROUTE = "/health", "/predict"
DEFAULT_MACHINE = "n1-standard-4"
DEFAULT_ENDPOINT = "psa-grader"
MODEL_FILES = ("psa_dual_branch_state_dict.pth", "psa_dual_branch_config.json")  # core/export.py
IDLE_WARNING = ("a deployed endpoint bills for its machines every hour, even when no request comes; "
                "undeploy it when you are done (psa-cockpit undeploy ENDPOINT)")


@dataclass(frozen=True)
class DeployPlan:
    """What `deploy` will create, priced before anything is."""
    model_uri: str
    endpoint: str                 # display name (new or reused endpoint)
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    min_replicas: int
    max_replicas: int
    region: str
    hourly_cost_usd: float | None       # at min_replicas: what it costs while idle
    max_hourly_cost_usd: float | None   # at max_replicas

    def cost_line(self) -> str:
        gpu = f" + {self.accelerator_count} x {self.accelerator_type}" if self.accelerator_type else ""
        replicas = (f"{self.min_replicas} replica" + ("s" if self.min_replicas > 1 else "")
                    if self.min_replicas == self.max_replicas
                    else f"{self.min_replicas}..{self.max_replicas} replicas")
        if self.hourly_cost_usd is None:
            price = "cost unknown (machine or region not in the catalog)"
        elif self.max_hourly_cost_usd and self.max_hourly_cost_usd != self.hourly_cost_usd:
            price = f"${self.hourly_cost_usd:,.2f}/hour idle, up to ${self.max_hourly_cost_usd:,.2f}/hour"
        else:
            price = f"${self.hourly_cost_usd:,.2f}/hour"
        return f"endpoint {self.endpoint} in {self.region}: {self.machine_type}{gpu}, {replicas}: {price}"


@dataclass
class DeployedInfo:
    id: str
    model: str
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    min_replicas: int
    max_replicas: int


@dataclass
class EndpointInfo:
    id: str
    name: str                     # display name
    resource_name: str
    deployed: list[DeployedInfo] = field(default_factory=list)
    hourly_cost_usd: float | None = None   # of what is deployed, at min replicas; 0 when nothing is


def _accel_name(machine: Any) -> str:
    from google.cloud import aiplatform_v1 as v1

    return v1.AcceleratorType(machine.accelerator_type).name if machine.accelerator_count else ""


def encode_card(front: str | bytes | None, back: str | bytes) -> dict:
    """One prediction instance of core/serve.py's contract from paths (or bytes) of the two scans."""
    def b64(src: str | bytes) -> dict:
        try:
            data = src if isinstance(src, bytes) else Path(src).read_bytes()
        except OSError as exc:
            raise CockpitError(f"{src}: cannot read the scan ({exc.strerror or exc})", EXIT_USAGE) from None
        return {"b64": base64.b64encode(data).decode("ascii")}

    instance = {"back": b64(back)}
    if front is not None:
        instance["front"] = b64(front)
    return instance


def predict_local(url: str, front: str | None, back: str, timeout_s: float = 120.0) -> dict:
    """POST one card to a running `python -m core.serve` (URL of the server or of its predict route)."""
    if not url.startswith(("http://", "https://")):
        raise CockpitError(f"--local {url!r}: expected the server's URL, e.g. http://127.0.0.1:8080", EXIT_USAGE)
    target = url if url.rstrip("/").endswith(PREDICT_ROUTE) else url.rstrip("/") + PREDICT_ROUTE
    body = json.dumps({"instances": [encode_card(front, back)]}).encode()
    req = urllib.request.Request(target, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", "")
        except (ValueError, AttributeError):
            detail = exc.reason
        raise CockpitError(f"{target}: HTTP {exc.code}: {detail}", EXIT_SUBMIT) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CockpitError(f"{target}: cannot reach the server ({reason}); start it with "
                           "python -m core.serve --model DIR", EXIT_SUBMIT) from None
    return reply["predictions"][0]


class ServingService:
    """Vertex AI serving for one project and region; clients are built lazily (tests pass their own)."""

    def __init__(self, cfg: Any = None, *, project: str = "", region: str = "", catalog: Any = None,
                 model_client: Any = None, endpoint_client: Any = None, prediction_client: Any = None):
        self.cfg = cfg
        cloud = getattr(cfg, "cloud", None)
        self.project = project or getattr(cloud, "project", "")
        self.region = region or getattr(cloud, "region", "") or "us-central1"
        if not self.project:
            raise CockpitError(f"{getattr(cfg, 'source', 'preset')}: cloud.project is empty; set it to your "
                               "Google Cloud project id (or pass --project)", EXIT_USAGE)
        self._catalog = catalog
        self._clients = {"model": model_client, "endpoint": endpoint_client, "prediction": prediction_client}

    def _client(self, kind: str) -> Any:
        if self._clients[kind] is None:
            build = {"model": clients.model_client, "endpoint": clients.endpoint_client,
                     "prediction": clients.prediction_client}[kind]
            self._clients[kind] = build(self.cfg, self.region)
        return self._clients[kind]

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from cockpit.catalog import load_catalog

            self._catalog = load_catalog()
        return self._catalog

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def endpoint_name(self, endpoint_id: str) -> str:
        return endpoint_id if endpoint_id.startswith("projects/") else f"{self.parent}/endpoints/{endpoint_id}"

    def _call(self, action: str, fn: Callable[[], Any]) -> Any:
        return call_api(action, fn)

    # ----- pricing ----------------------------------------------------------------------------------------
    def hourly_cost(self, machine_type: str, accelerator: str, count: int, replicas: int) -> float | None:
        try:
            return self.catalog.hourly_price(machine_type, accelerator, count, self.region) * replicas
        except CockpitError:  # a machine the catalog does not list: unknown, not an error
            return None

    def plan(self, model_uri: str, *, endpoint: str = "", machine_type: str = "", accelerator: str = "",
             accelerator_count: int = 0, min_replicas: int = 1, max_replicas: int = 0) -> DeployPlan:
        """Check the request and price it; nothing is created. CockpitError(EXIT_USAGE) on bad values."""
        if not model_uri.startswith("gs://"):
            raise CockpitError(f"{model_uri!r}: Vertex AI serves a model from Cloud Storage; expected a job id "
                               "or gs://BUCKET/.../model (serve a local model with python -m core.serve)",
                               EXIT_USAGE)
        machine_type = machine_type or DEFAULT_MACHINE
        count = accelerator_count or (1 if accelerator else 0)
        max_replicas = max_replicas or min_replicas
        if min_replicas < 1 or max_replicas < min_replicas:
            raise CockpitError(f"--min-replicas {min_replicas} --max-replicas {max_replicas}: expected "
                               "1 <= min <= max", EXIT_USAGE)
        self.catalog.validate_combo(machine_type, accelerator, count, self.region, where="deploy")
        return DeployPlan(model_uri=model_uri.rstrip("/") + "/", endpoint=endpoint or DEFAULT_ENDPOINT,
                          machine_type=machine_type, accelerator_type=accelerator, accelerator_count=count,
                          min_replicas=min_replicas, max_replicas=max_replicas, region=self.region,
                          hourly_cost_usd=self.hourly_cost(machine_type, accelerator, count, min_replicas),
                          max_hourly_cost_usd=self.hourly_cost(machine_type, accelerator, count, max_replicas))

    # ----- deploy -----------------------------------------------------------------------------------------
    def upload_model(self, plan: DeployPlan, image_uri: str) -> str:
        """ModelService.UploadModel: the Model Registry entry; returns its resource name."""
        from google.cloud import aiplatform_v1 as v1

        name = plan.model_uri.rstrip("/").rsplit("/", 2)[-2] if plan.model_uri.count("/") > 3 else "model"
        model = v1.Model(
            display_name=f"psa-grader-{label_value(name)}"[:128], artifact_uri=plan.model_uri,
            labels={COCKPIT_LABEL: "1"},
            container_spec=v1.ModelContainerSpec(image_uri=image_uri, predict_route=PREDICT_ROUTE,
                                                 health_route=HEALTH_ROUTE,
                                                 ports=[v1.Port(container_port=SERVE_PORT)]))
        op = self._call("upload model", lambda: self._client("model").upload_model(parent=self.parent, model=model))
        return self._call("upload model", op.result).model

    def find_endpoint(self, display_name: str) -> Any | None:
        for endpoint in self._list_raw():
            if endpoint.display_name == display_name:
                return endpoint
        return None

    def endpoint_for(self, display_name: str) -> str:
        """The resource name of this tool's endpoint with that display name, created when there is none."""
        from google.cloud import aiplatform_v1 as v1

        found = self.find_endpoint(display_name)
        if found is not None:
            return found.name
        endpoint = v1.Endpoint(display_name=display_name, labels={COCKPIT_LABEL: "1"})
        op = self._call("create endpoint",
                        lambda: self._client("endpoint").create_endpoint(parent=self.parent, endpoint=endpoint))
        return self._call("create endpoint", op.result).name

    def deploy(self, plan: DeployPlan, image_uri: str, on_line: Callable[[str], None] = lambda _: None) -> EndpointInfo:
        """Upload the Model, create/reuse the Endpoint, DeployModel with dedicated resources; waits."""
        from google.cloud import aiplatform_v1 as v1

        on_line(f"uploading model {plan.model_uri} (image {image_uri})")
        model_name = self.upload_model(plan, image_uri)
        endpoint_name = self.endpoint_for(plan.endpoint)
        previous = self.get(endpoint_name).deployed
        on_line(f"deploying {model_name.rsplit('/', 1)[-1]} to endpoint {endpoint_name.rsplit('/', 1)[-1]} "
                "(Vertex AI takes 10-20 minutes to start the machines)")
        machine = v1.MachineSpec(machine_type=plan.machine_type)
        if plan.accelerator_type:
            machine.accelerator_type = v1.AcceleratorType[plan.accelerator_type]
            machine.accelerator_count = plan.accelerator_count
        deployed = v1.DeployedModel(
            model=model_name, display_name=f"psa-grader-{plan.machine_type}"[:128],
            dedicated_resources=v1.DedicatedResources(machine_spec=machine, min_replica_count=plan.min_replicas,
                                                      max_replica_count=plan.max_replicas))
        op = self._call("deploy model", lambda: self._client("endpoint").deploy_model(
            endpoint=endpoint_name, deployed_model=deployed, traffic_split={"0": 100}))
        self._call("deploy model", op.result)
        for d in previous:  # the new model takes all traffic; the old one would bill on for nothing
            on_line(f"undeploying the previous model {d.id} from {plan.endpoint}")
            self._undeploy_one(endpoint_name, d.id)
        return self.get(endpoint_name)

    # ----- endpoints --------------------------------------------------------------------------------------
    def _list_raw(self) -> list[Any]:
        from google.cloud import aiplatform_v1 as v1

        request = v1.ListEndpointsRequest(parent=self.parent, filter=f'labels.{COCKPIT_LABEL}="1"')
        return self._call("list endpoints", lambda: list(self._client("endpoint").list_endpoints(request=request)))

    def _info(self, endpoint: Any) -> EndpointInfo:
        deployed = []
        for d in endpoint.deployed_models:
            spec = d.dedicated_resources
            deployed.append(DeployedInfo(
                id=d.id, model=d.model, machine_type=spec.machine_spec.machine_type,
                accelerator_type=_accel_name(spec.machine_spec),
                accelerator_count=spec.machine_spec.accelerator_count,
                min_replicas=spec.min_replica_count, max_replicas=spec.max_replica_count))
        costs = [self.hourly_cost(d.machine_type, d.accelerator_type, d.accelerator_count, max(d.min_replicas, 1))
                 for d in deployed]
        cost = None if None in costs else sum(costs)
        return EndpointInfo(id=endpoint.name.rsplit("/", 1)[-1], name=endpoint.display_name,
                            resource_name=endpoint.name, deployed=deployed, hourly_cost_usd=cost)

    def list(self) -> list[EndpointInfo]:
        """This tool's endpoints (label psa-cockpit=1) with what is deployed and its cost per hour."""
        return [self._info(e) for e in self._list_raw()]

    def get(self, endpoint_id: str) -> EndpointInfo:
        name = self.endpoint_name(endpoint_id)
        return self._info(self._call(f"get endpoint {endpoint_id}",
                                     lambda: self._client("endpoint").get_endpoint(name=name)))

    def undeploy(self, endpoint_id: str) -> EndpointInfo:
        """Undeploy every model of the endpoint (its machines stop billing); the empty endpoint stays."""
        info = self.get(endpoint_id)
        if not info.deployed:
            raise CockpitError(f"endpoint {info.id} has no deployed model (nothing is billing)", EXIT_USAGE)
        for d in info.deployed:
            self._undeploy_one(info.resource_name, d.id)
        return self.get(info.resource_name)

    def _undeploy_one(self, endpoint_name: str, deployed_id: str) -> None:
        op = self._call(f"undeploy {deployed_id}", lambda: self._client("endpoint").undeploy_model(
            endpoint=endpoint_name, deployed_model_id=deployed_id))
        self._call(f"undeploy {deployed_id}", op.result)

    def predict(self, endpoint_id: str, front: str | bytes | None, back: str | bytes) -> dict:
        """PredictionService.Predict of one card; returns the prediction dict core.serve produced."""
        from google.protobuf import json_format, struct_pb2

        instance = json_format.ParseDict(encode_card(front, back), struct_pb2.Value())
        name = self.endpoint_name(endpoint_id)
        response = self._call(f"predict on endpoint {endpoint_id}",
                              lambda: self._client("prediction").predict(endpoint=name, instances=[instance]))
        predictions = json_format.MessageToDict(type(response).pb(response)).get("predictions", [])
        if not predictions:
            raise CockpitError(f"endpoint {endpoint_id} returned no prediction", EXIT_SUBMIT)
        prediction = predictions[0]
        if isinstance(prediction.get("grade"), float):  # JSON numbers come back as floats through protobuf
            prediction["grade"] = int(prediction["grade"])
        return prediction


_SERVICES: dict[tuple, ServingService] = {}


def service_for(cfg: Any, project: str | None = None, region: str | None = None) -> ServingService:
    """The ServingService of the preset's project (cockpit.jobs.resolve_project) and region, kept while
    project, region and endpoint stay the same (its GAPIC channels are reused by the TUI's refreshes)."""
    from cockpit.jobs import resolve_project

    project = resolve_project(cfg, project)
    region = region or (cfg.cloud.region if cfg is not None else "") or "us-central1"
    key = (project, region, clients.vertex_endpoint(cfg, region).address)
    if key not in _SERVICES:
        _SERVICES.clear()
        _SERVICES[key] = ServingService(cfg, project=project, region=region)
    return _SERVICES[key]


def model_uri_for(target: str, service: ServingService) -> str:
    """gs://... as given; a Vertex job id -> its exported model directory (the job must have SUCCEEDED)."""
    from cockpit.jobs import is_local

    if target.startswith("gs://"):
        return target
    if is_local(target):
        raise CockpitError(f"{target} is a local run: its model is on this machine; serve it with "
                           "python -m core.serve --model DIR, or deploy a gs:// copy", EXIT_USAGE)
    from cockpit.vertex import VertexBackend

    jobs = VertexBackend(service.cfg, project=service.project, region=service.region)
    return model_dir_of_job(jobs.get(target))


def default_image(service: ServingService, tag: str = "") -> str:
    """The serving image URI for the current source tree (tag: the git commit, as for training)."""
    from cockpit.image import REPO_ROOT, git_tag

    return serving_image_uri(service.cfg, tag or git_tag(REPO_ROOT), service.project, service.region)


def deploy_with_image(service: ServingService, plan: DeployPlan, image_uri: str, on_line: Callable[[str], None],
                      *, build: bool = True, cancel: Any = None) -> EndpointInfo:
    """The whole deploy after the user said yes: the serving image (built/pushed if missing), then deploy."""
    if build:
        ensure_serving_image(image_uri, on_line, cancel)
    return service.deploy(plan, image_uri, on_line)


ENDPOINT_COLUMNS = ("ID", "NAME", "DEPLOYED", "MACHINE", "REPLICAS", "COST/HOUR")


def cost_per_hour(value: float | None) -> str:
    return f"${value:,.2f}/h" if value is not None else "-"


def endpoint_row(e: EndpointInfo) -> tuple[str, ...]:
    """One endpoint as the CLI table and the TUI show it (ENDPOINT_COLUMNS)."""
    d = e.deployed[0] if e.deployed else None
    gpu = f" + {d.accelerator_count} x {d.accelerator_type}" if d and d.accelerator_type else ""
    return (e.id, e.name, str(len(e.deployed)), (d.machine_type + gpu) if d else "-",
            f"{d.min_replicas}-{d.max_replicas}" if d else "-",
            cost_per_hour(e.hourly_cost_usd) if e.deployed else "$0.00/h")


def model_dir_of_job(info: Any) -> str:
    """A finished Vertex job's exported model directory (core.train writes it to OUTPUT/model/)."""
    if info.state != "JOB_STATE_SUCCEEDED":
        raise CockpitError(f"job {info.id} is {info.state.removeprefix('JOB_STATE_')}: only a SUCCEEDED job "
                           "has an exported model to deploy", EXIT_USAGE)
    if not info.output_dir:
        raise CockpitError(f"job {info.id} has no base output directory", EXIT_USAGE)
    return info.output_dir.rstrip("/") + "/model/"


def serving_image_uri(cfg: Any, tag: str, project: str = "", region: str = "") -> str:
    """The serving image beside the trainer: REGION-docker.pkg.dev/PROJECT/REPO/IMAGE-serve:TAG (project and
    region default to the preset's)."""
    import dataclasses

    from cockpit.image import image_uri

    cloud = dataclasses.replace(cfg.cloud, project=project or cfg.cloud.project, region=region or cfg.cloud.region)
    uri = image_uri(dataclasses.replace(cfg, cloud=cloud), tag)
    name, _, tag = uri.rpartition(":")
    return f"{name}-serve:{tag}"


def ensure_serving_image(uri: str, on_line: Callable[[str], None], cancel: Any = None) -> bool:
    """Build the Dockerfile's `serve` target and push it unless the registry has the tag (cockpit.image's
    one build_and_push); True when it built."""
    from cockpit.image import build_and_push

    return build_and_push(uri, on_line, cancel, target=SERVE_TARGET)
