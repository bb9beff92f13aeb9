"""In-process Vertex AI ModelService, EndpointService and PredictionService on one 127.0.0.1 address.

The cockpit's GAPIC clients reach it over real gRPC through PSA_VERTEX_ENDPOINT, like FakeVertex
(vertex_server.py), whose JobService it can serve on the same address (`jobs=`), since every Vertex AI
service shares that one endpoint. Long-running calls (UploadModel, CreateEndpoint, DeployModel,
UndeployModel) answer with a finished google.longrunning Operation whose response is packed, so the
client's `operation.result()` unpacks it without polling. Predict forwards the instances as JSON to
`predict_url` (a real `core.serve` over HTTP, as Vertex AI forwards to the container) and returns its
predictions; without a deployed model it refuses like the service does.
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import grpc
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, json_format

from tests.fakes.grpc_server import InProcessGrpcServer

_PREFIX = "google.cloud.aiplatform.v1."
_LABEL_RE = re.compile(r'labels\.([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"')


def _done(name: str, response: Any) -> operations_pb2.Operation:
    packed = any_pb2.Any()
    packed.Pack(type(response).pb(response))
    return operations_pb2.Operation(name=name, done=True, response=packed)


@dataclass
class FakeServing(InProcessGrpcServer):
    jobs: Any = None                 # a tests.fakes.vertex_server.FakeVertex (not started) to serve too
    predict_url: str = ""            # the local core.serve that Predict forwards to, e.g. http://127.0.0.1:P/predict
    models: dict[str, v1.Model] = field(default_factory=dict)
    endpoints: dict[str, v1.Endpoint] = field(default_factory=dict)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    address: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(5000)
        self._server = None

    def _op(self, parent: str, response: Any) -> operations_pb2.Operation:
        return _done(f"{parent}/operations/{next(self._ids)}", response)

    def _find(self, table: dict, name: str, kind: str, context) -> Any:
        item = table.get(name.rsplit("/", 1)[-1])
        if item is None or item.name != name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{kind} {name} not found")
        return item

    # ----- ModelService ---------------------------------------------------------------------------------
    def _upload_model(self, request: v1.UploadModelRequest, context) -> operations_pb2.Operation:
        with self._lock:
            self.requests.append(("upload_model", request))
            model = v1.Model(request.model)
            model_id = str(next(self._ids))
            model.name = f"{request.parent}/models/{model_id}"
            model.create_time = datetime.now(timezone.utc)
            self.models[model_id] = model
            return self._op(model.name, v1.UploadModelResponse(model=model.name))

    def _get_model(self, request: v1.GetModelRequest, context) -> v1.Model:
        with self._lock:
            return v1.Model(self._find(self.models, request.name, "Model", context))

    # ----- EndpointService ------------------------------------------------------------------------------
    def _create_endpoint(self, request: v1.CreateEndpointRequest, context) -> operations_pb2.Operation:
        with self._lock:
            self.requests.append(("create_endpoint", request))
            endpoint = v1.Endpoint(request.endpoint)
            endpoint_id = request.endpoint_id or str(next(self._ids))
            endpoint.name = f"{request.parent}/endpoints/{endpoint_id}"
            endpoint.create_time = datetime.now(timezone.utc)
            self.endpoints[endpoint_id] = endpoint
            return self._op(endpoint.name, v1.Endpoint(endpoint))

    def _get_endpoint(self, request: v1.GetEndpointRequest, context) -> v1.Endpoint:
        with self._lock:
            return v1.Endpoint(self._find(self.endpoints, request.name, "Endpoint", context))

    def _list_endpoints(self, request: v1.ListEndpointsRequest, context) -> v1.ListEndpointsResponse:
        with self._lock:
            self.requests.append(("list_endpoints", request))
            wanted = dict(_LABEL_RE.findall(request.filter))
            hits = [v1.Endpoint(e) for e in self.endpoints.values()
                    if e.name.startswith(request.parent + "/")
                    and all(e.labels.get(k) == v for k, v in wanted.items())]
            return v1.ListEndpointsResponse(endpoints=hits)

    def _deploy_model(self, request: v1.DeployModelRequest, context) -> operations_pb2.Operation:
        with self._lock:
            self.requests.append(("deploy_model", request))
            endpoint = self._find(self.endpoints, request.endpoint, "Endpoint", context)
            self._find(self.models, request.deployed_model.model, "Model", context)
            deployed = v1.DeployedModel(request.deployed_model)
            deployed.id = str(next(self._ids))
            deployed.create_time = datetime.now(timezone.utc)
            endpoint.deployed_models.append(deployed)
            endpoint.traffic_split = {deployed.id: 100}
            return self._op(endpoint.name, v1.DeployModelResponse(deployed_model=deployed))

    def _undeploy_model(self, request: v1.UndeployModelRequest, context) -> operations_pb2.Operation:
        with self._lock:
            self.requests.append(("undeploy_model", request))
            endpoint = self._find(self.endpoints, request.endpoint, "Endpoint", context)
            kept = [d for d in endpoint.deployed_models if d.id != request.deployed_model_id]
            if len(kept) == len(endpoint.deployed_models):
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"DeployedModel {request.deployed_model_id} not found on {endpoint.name}")
            del endpoint.deployed_models[:]
            endpoint.deployed_models.extend(kept)
            endpoint.traffic_split = {d.id: 100 // len(kept) for d in kept}
            return self._op(endpoint.name, v1.UndeployModelResponse())

    # ----- PredictionService ----------------------------------------------------------------------------
    def _predict(self, request: v1.PredictRequest, context) -> v1.PredictResponse:
        with self._lock:
            self.requests.append(("predict", request))
            endpoint = self._find(self.endpoints, request.endpoint, "Endpoint", context)
            deployed = list(endpoint.deployed_models)
        if not deployed:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"Endpoint {endpoint.name} has no deployed model")
        instances = [json_format.MessageToDict(v) for v in v1.PredictRequest.pb(request).instances]
        body = json.dumps({"instances": instances}).encode()
        req = urllib.request.Request(self.predict_url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                reply = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # the service passes the container's 4xx on as INVALID_ARGUMENT
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.read().decode(errors="replace"))
        out = v1.PredictResponse(deployed_model_id=deployed[0].id, model=deployed[0].model)
        pb = v1.PredictResponse.pb(out)
        for p in reply["predictions"]:
            json_format.ParseDict(p, pb.predictions.add())
        return v1.PredictResponse.wrap(pb)

    # ----- lifecycle ------------------------------------------------------------------------------------
    def _services(self) -> dict:
        def unary(fn, req_type, serialize=lambda m: m.SerializeToString()):
            return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req_type.deserialize,
                                                       response_serializer=serialize)

        services = {
            _PREFIX + "ModelService": {
                "UploadModel": unary(self._upload_model, v1.UploadModelRequest),
                "GetModel": unary(self._get_model, v1.GetModelRequest, v1.Model.serialize),
            },
            _PREFIX + "EndpointService": {
                "CreateEndpoint": unary(self._create_endpoint, v1.CreateEndpointRequest),
                "GetEndpoint": unary(self._get_endpoint, v1.GetEndpointRequest, v1.Endpoint.serialize),
                "ListEndpoints": unary(self._list_endpoints, v1.ListEndpointsRequest,
                                       v1.ListEndpointsResponse.serialize),
                "DeployModel": unary(self._deploy_model, v1.DeployModelRequest),
                "UndeployModel": unary(self._undeploy_model, v1.UndeployModelRequest),
            },
            _PREFIX + "PredictionService": {
                "Predict": unary(self._predict, v1.PredictRequest, v1.PredictResponse.serialize),
            },
        }
        if self.jobs is not None:
            services.update(self.jobs._services())
        return services

