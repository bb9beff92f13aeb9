"""The part every in-process gRPC fake shares: serve a handler table on 127.0.0.1, stop, `with` support."""
from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc


class InProcessGrpcServer:
    """Subclasses set SERVICE (the full gRPC service name) and implement `_handlers()` (or `_services()`)."""

    SERVICE = ""
    MAX_WORKERS = 8

    _server: Any = None
    address: str = ""

    def _handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        raise TypeError(f"{type(self).__name__} must define _handlers()")

    def _services(self) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
        """Service name -> handler table; a fake speaking several services (one address) overrides it."""
        return {self.SERVICE: self._handlers()}

    def start(self):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.MAX_WORKERS))
        server.add_generic_rpc_handlers(tuple(grpc.method_handlers_generic_handler(name, handlers)
                                              for name, handlers in self._services().items()))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server, self.address = server, f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0).wait()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
