"""`python -m core.serve --model DIR|gs://...`: the grader behind HTTP, in the Vertex AI custom-container
prediction contract (README "Serve the grader").

- listens on `AIP_HTTP_PORT` (default 8080; `--port` wins), on all interfaces (`--host`);
- `GET AIP_HEALTH_ROUTE` (default /health): 200 once the model is loaded (it is loaded before the port
  opens, so a bad model is one error line and exit 2, never a server that answers 500 forever);
- `POST AIP_PREDICT_ROUTE` (default /predict):
  `{"instances": [{"front": {"b64": "..."}, "back": {"b64": "..."}}, ...]}` ->
  `{"predictions": [<the fields core.predict prints>, ...]}`, from core.inference, the one prediction
  path; `back` alone is enough for a back-only model;
- the model comes from `--model`, else from `AIP_STORAGE_URI` (where Vertex AI copies the Model's
  artifact_uri).

Bad input is a 400 `{"error": "instances[i].side: what is wrong"}`; a crash inside the model is a 500 with
one line, logged; the server keeps serving either way. Decoding runs on a thread pool sized to the CPUs;
the model runs on one thread of its own (torch uses every core inside it) and grades, as one batch,
every request that arrived while it was busy (micro-batching, no added wait).

Starlette + uvicorn (the `serve` extra) are imported only here, so training keeps its light dependencies;
so are orjson and pybase64: a pair of scans is ~650 KB of base64 JSON, and the standard library's json and
base64 spend ~2 ms a request on it where these spend ~0.3 ms (benchmarks/serve_latency.py).
"""
from __future__ import annotations

import argparse
import asyncio
import binascii
import logging
import os
import queue
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.data import ImageError
from core.export import ExportError
from core.inference import grade_batch, load_model, model_sides, preprocess
from core.reads import MAX_READS, ReadsError, reads_of
from core import storage

try:  # the serve extra; main() says how to install it when it is missing
    import orjson
    import pybase64
except ImportError:  # pragma: no cover - exercised by a machine without the extra
    orjson = pybase64 = None  # type: ignore[assignment]

log = logging.getLogger("core.serve")

DEFAULT_PORT = 8080
MAX_INSTANCES = 64                  # per request; Vertex AI caps online requests at 1.5 MB anyway
MAX_IMAGE_BYTES = 8 * 1024 * 1024   # per decoded image


class BadRequest(ValueError):
    """The client's fault: answered with 400 and this message."""


@dataclass(frozen=True)
class Limits:
    max_instances: int = MAX_INSTANCES
    max_image_bytes: int = MAX_IMAGE_BYTES

    @property
    def max_body_bytes(self) -> int:
        # every image at its limit, base64-inflated (4/3), plus room for the JSON around them
        return self.max_instances * 2 * (self.max_image_bytes * 4 // 3 + 4) + 64 * 1024


def parse_request(body: bytes, sides: list[str], limits: Limits) -> list[dict[str, bytes]]:
    """The request body -> one {side: image bytes} per instance; BadRequest naming the instance otherwise."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # also what non-UTF-8 bytes raise
        raise BadRequest(f"invalid JSON: {exc}") from None
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list) or not instances:
        raise BadRequest('expected {"instances": [{"front": {"b64": ...}, "back": {"b64": ...}}, ...]} '
                         "with at least one instance")
    if len(instances) > limits.max_instances:
        raise BadRequest(f"too many instances: {len(instances)}, at most {limits.max_instances} per request")
    cards = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise BadRequest(f"instances[{i}]: expected an object with {' and '.join(sides)}")
        card = {}
        for side in sides:
            if side not in inst:
                raise BadRequest(f"instances[{i}]: missing {side!r} (this model reads {' and '.join(sides)})")
            card[side] = _decode_b64(inst[side], f"instances[{i}].{side}", limits)
        cards.append(card)
    return cards


def _decode_b64(value: Any, where: str, limits: Limits) -> bytes:
    data = value.get("b64") if isinstance(value, dict) else None
    if not isinstance(data, str):
        raise BadRequest(f'{where}: expected {{"b64": "<base64 of a JPEG or PNG>"}}')
    if len(data) > limits.max_image_bytes * 4 // 3 + 4:
        raise BadRequest(f"{where}: image over the size limit of {limits.max_image_bytes} bytes")
    try:
        # validate: only the base64 alphabet with correct padding (no whitespace, no non-ASCII), as the
        # standard library's b64decode(validate=True), decoded with SIMD: ~0.02 ms a scan against ~1 ms
        raw = pybase64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: bad base64") from None
    if len(raw) > limits.max_image_bytes:
        raise BadRequest(f"{where}: image is {len(raw)} bytes, over the size limit of {limits.max_image_bytes}")
    return raw


class Grader:
    """The loaded model, a decode pool, and the model thread that batches what arrives together."""

    def __init__(self, model: Any, config: dict, limits: Limits = Limits(), decode_threads: int = 0):
        self.model, self.config, self.limits = model, config, limits
        self.sides = model_sides(config)
        self.decode_pool = ThreadPoolExecutor(max_workers=decode_threads or os.cpu_count() or 1,
                                              thread_name_prefix="decode")
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._model_loop, name="model", daemon=True)
        self._thread.start()

    def decode_card(self, i: int, card: dict[str, bytes]) -> dict:
        """One instance's bytes -> preprocessed tensors (core.inference, as training decodes)."""
        out = {}
        for side in self.sides:  # one side at a time, so the error names the one that failed
            try:
                out.update(preprocess(self.config, card, sides=[side]))
            except ImageError:
                raise BadRequest(f"instances[{i}].{side}: not an image (expected JPEG or PNG bytes)") from None
        return out

    def submit(self, tensors: list[dict]) -> Future:
        fut: Future = Future()
        self._queue.put((tensors, fut))
        return fut

    def _model_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            size = len(item[0])
            while size < self.limits.max_instances:  # whatever else is already waiting joins this batch
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                size += len(nxt[0])
            self._run(batch)

    def _run(self, batch: list[tuple[list[dict], Future]]) -> None:
        try:
            results = grade_batch(self.model, self.config, [t for tensors, _ in batch for t in tensors])
        except Exception as exc:  # the model's fault, not the client's: every request in the batch gets 500
            for _, fut in batch:
                fut.set_exception(exc)
            return
        start = 0
        for tensors, fut in batch:
            fut.set_result(results[start:start + len(tensors)])
            start += len(tensors)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        self.decode_pool.shutdown(wait=False, cancel_futures=True)


def create_app(grader: Grader, health_route: str = "/health", predict_route: str = "/predict"):
    """The Starlette app of the contract, around an already loaded Grader."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse as _StarletteJSON
    from starlette.routing import Route

    class JSONResponse(_StarletteJSON):
        def render(self, content: Any) -> bytes:
            return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "sides": grader.sides})

    async def predict(request: Request) -> JSONResponse:
        cards: list = []
        try:
            body = await _read_body(request, grader.limits.max_body_bytes)
            loop = asyncio.get_running_loop()
            cards = await loop.run_in_executor(grader.decode_pool, _parse_and_decode, grader, body)
            predictions = await asyncio.wrap_future(grader.submit(cards))
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:  # the server's or the model's fault: one line to the client and the log
            line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.error("prediction failed (%d instances): %s", len(cards), line)
            return JSONResponse({"error": f"prediction failed: {line}"}, status_code=500)
        return JSONResponse({"predictions": predictions})

    return Starlette(routes=[Route(health_route, health, methods=["GET"]),
                             Route(predict_route, predict, methods=["POST"])])


def _parse_and_decode(grader: Grader, body: bytes) -> list[dict]:
    cards = parse_request(body, grader.sides, grader.limits)
    return [grader.decode_card(i, card) for i, card in enumerate(cards)]


async def _read_body(request: Any, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def start_background(app: Any, host: str = "127.0.0.1", port: int = 0,
                     keep_alive_s: int = 5) -> tuple[str, Any]:
    """Run `app` under uvicorn on a thread (tests, benchmarks, embedding); -> (base URL, stop function).
    keep_alive_s: how long an idle client connection stays open (uvicorn's default, 5 s)."""
    import socket

    import uvicorn

    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says TCP; without it each response (headers, then body) waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           timeout_keep_alive=keep_alive_s))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return f"http://{host}:{sock.getsockname()[1]}", stop


def _route(env: str, default: str) -> str:
    route = os.environ.get(env) or default
    return route if route.startswith("/") else "/" + route


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="", help="exported model directory, local or gs:// "
                                              "(default: $AIP_STORAGE_URI)")
    p.add_argument("--port", type=int, default=None, help=f"port (default: $AIP_HTTP_PORT or {DEFAULT_PORT})")
    p.add_argument("--host", default="0.0.0.0", help="interface to listen on (default: all)")
    p.add_argument("--max-instances", type=int, default=MAX_INSTANCES, help="instances per request at most")
    p.add_argument("--max-image-bytes", type=int, default=MAX_IMAGE_BYTES, help="bytes per image at most")
    p.add_argument("--reads", type=int, default=None,
                   help=f"read each card this many times, its scans moved by a pixel between reads, and grade the "
                        f"mean (1 - {MAX_READS}; default: what the model was exported with; each read is a "
                        f"forward pass)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    model_dir = args.model or os.environ.get("AIP_STORAGE_URI", "")
    if not model_dir:
        print("error: no model: pass --model DIR|gs://... or set AIP_STORAGE_URI", file=sys.stderr)
        return 2
    try:
        port = args.port if args.port is not None else int(os.environ.get("AIP_HTTP_PORT") or DEFAULT_PORT)
    except ValueError:
        print(f"error: AIP_HTTP_PORT={os.environ['AIP_HTTP_PORT']!r}: expected a port number", file=sys.stderr)
        return 2
    try:
        import uvicorn
        if orjson is None or pybase64 is None:
            raise ImportError("orjson, pybase64")
    except ImportError:
        print("error: core.serve needs the serve extra: pip install -e '.[serve]'", file=sys.stderr)
        return 2
    try:
        model, config = load_model(model_dir)
        config = {**config, "reads": reads_of(config, args.reads)}
    except (ExportError, storage.StorageError, ReadsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    grader = Grader(model, config, Limits(args.max_instances, args.max_image_bytes))
    app = create_app(grader, _route("AIP_HEALTH_ROUTE", "/health"), _route("AIP_PREDICT_ROUTE", "/predict"))
    log.info("model %s loaded (reads %s, each card %d times); listening on %s:%d", model_dir, "+".join(grader.sides),
             config["reads"], args.host, port)
    try:
        # One process: the model is loaded once and torch already uses every core inside a batch.
        uvicorn.run(app, host=args.host, port=port, log_level="warning", access_log=False)
    finally:
        grader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
