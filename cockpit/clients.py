"""Build the Google API clients (Vertex AI Job/Model/Endpoint/Prediction services, Cloud Logging, Cloud
Storage) from one place.

Endpoints (contract, issue 4; hardened in issue 12): a non-Google endpoint comes ONLY from the
environment, `PSA_VERTEX_ENDPOINT` / `PSA_LOGGING_ENDPOINT` (host:port) and the standard
`STORAGE_EMULATOR_HOST`. A preset never chooses one: presets are shared and checked in, and a client
built with Application Default Credentials would send the user's access token to whatever host the
preset named (core/config.py refuses `cloud.*_endpoint` keys with a value). Only a loopback endpoint gets
an insecure channel and anonymous credentials, so tests and local emulators need no account. Anything
else uses Application Default Credentials; when there are none the caller gets one line with the
`gcloud` command that fixes it, never a traceback.

The SDKs are imported inside the functions: `aiplatform_v1` alone costs about 0.9 s (docs/design.md §8).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cockpit.errors import EXIT_AUTH, CockpitError

# gRPC's C core prints TLS/handshake chatter to stderr unless told otherwise; this must happen before
# grpc is first imported, and every cockpit module that reaches grpc imports this one first.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

AUTH_HINT = "run: gcloud auth application-default login"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Endpoint:
    address: str        # host:port for gRPC, or a URL for storage
    insecure: bool      # loopback: plain-text channel, anonymous credentials


def is_loopback(address: str) -> bool:
    """'127.0.0.1:8080', 'localhost:1', 'http://127.0.0.1:4443', '[::1]:9' -> True.

    'http://127.0.0.1@evil.example', '127.0.0.1.evil.example:443' -> False: only the host part counts.
    """
    netloc = address.split("://", 1)[-1].split("/", 1)[0]
    if "@" in netloc:  # user@host: whatever precedes '@' is not where the connection goes
        return False
    host = netloc
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host in _LOOPBACK_HOSTS


def _cloud(cfg: Any) -> Any:
    return getattr(cfg, "cloud", None)


def vertex_endpoint(cfg: Any = None, region: str = "") -> Endpoint:
    """PSA_VERTEX_ENDPOINT when set, else the region's Google endpoint; the preset cannot choose."""
    override = os.environ.get("PSA_VERTEX_ENDPOINT", "")
    if override:
        return Endpoint(override, is_loopback(override))
    region = region or getattr(_cloud(cfg), "region", "") or "us-central1"
    return Endpoint(f"{region}-aiplatform.googleapis.com", False)


def logging_endpoint(cfg: Any = None) -> Endpoint:
    override = os.environ.get("PSA_LOGGING_ENDPOINT", "")
    if override:
        return Endpoint(override, is_loopback(override))
    return Endpoint("logging.googleapis.com", False)


def storage_endpoint(cfg: Any = None) -> Endpoint | None:
    """None means the default public endpoint."""
    override = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if override:
        if "://" not in override:
            override = f"http://{override}"
        return Endpoint(override, is_loopback(override))
    return None


def default_credentials() -> tuple[Any, str | None]:
    """Application Default Credentials and their project; CockpitError(EXIT_AUTH) when there are none."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError:
        # The library's message can quote file paths and environment; ours stays one line.
        raise CockpitError(f"no Google Cloud credentials found; {AUTH_HINT}", EXIT_AUTH) from None


def _insecure_channel(address: str):
    import grpc

    # Tail streams can be long and quiet; keepalive pings are not needed on loopback.
    return grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])


def _vertex_client(service: str, client_name: str, cfg: Any, region: str) -> Any:
    """A GAPIC client of one aiplatform_v1 service (`job_service`, `model_service`, ...) on the Vertex
    endpoint: every Vertex AI service is reached through the one PSA_VERTEX_ENDPOINT override."""
    import importlib

    module = importlib.import_module(f"google.cloud.aiplatform_v1.services.{service}")
    transports = importlib.import_module(f"google.cloud.aiplatform_v1.services.{service}.transports")
    client_cls = getattr(module, client_name)
    ep = vertex_endpoint(cfg, region)
    if ep.insecure:
        transport_cls = getattr(transports, client_name.removesuffix("Client") + "GrpcTransport")
        return client_cls(transport=transport_cls(channel=_insecure_channel(ep.address)))
    credentials, _ = default_credentials()
    return client_cls(credentials=credentials, client_options={"api_endpoint": ep.address})


def job_client(cfg: Any = None, region: str = "") -> Any:
    """google.cloud.aiplatform_v1.JobServiceClient for the preset's region (or the override)."""
    return _vertex_client("job_service", "JobServiceClient", cfg, region)


def model_client(cfg: Any = None, region: str = "") -> Any:
    """aiplatform_v1.ModelServiceClient (Model Registry: UploadModel) for the region."""
    return _vertex_client("model_service", "ModelServiceClient", cfg, region)


def endpoint_client(cfg: Any = None, region: str = "") -> Any:
    """aiplatform_v1.EndpointServiceClient (create/list endpoints, deploy/undeploy models)."""
    return _vertex_client("endpoint_service", "EndpointServiceClient", cfg, region)


def prediction_client(cfg: Any = None, region: str = "") -> Any:
    """aiplatform_v1.PredictionServiceClient (online Predict against an endpoint)."""
    return _vertex_client("prediction_service", "PredictionServiceClient", cfg, region)


def logging_client(cfg: Any = None) -> Any:
    """google.cloud.logging_v2 LoggingServiceV2Client (GAPIC; the high-level client has no tail)."""
    from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
    from google.cloud.logging_v2.services.logging_service_v2.transports import LoggingServiceV2GrpcTransport

    ep = logging_endpoint(cfg)
    if ep.insecure:
        return LoggingServiceV2Client(
            transport=LoggingServiceV2GrpcTransport(channel=_insecure_channel(ep.address)))
    credentials, _ = default_credentials()
    return LoggingServiceV2Client(credentials=credentials, client_options={"api_endpoint": ep.address})


def storage_client(cfg: Any = None, project: str = "") -> Any:
    """google.cloud.storage.Client: core.storage's one client (STORAGE_EMULATOR_HOST, else Application
    Default Credentials); `cfg` and `project` are accepted for symmetry with the other clients."""
    from core import storage

    try:
        return storage.client()
    except storage.StorageError as exc:
        raise CockpitError(str(exc), EXIT_AUTH) from None
