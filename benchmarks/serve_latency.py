"""Latency of the grader served by core.serve, per card, on this machine (README "Serve the grader").

For each preset's architecture (local: resnet18 at 72x96 with crops; cloud: resnet50 at 224x320), an exported
model is graded with the same front/back JPEG scans:
  - batch 1, in-process: core.inference.predict_cards (decode + letterbox + forward), median and p95;
  - batch 1, over HTTP: POST /predict to core.serve on 127.0.0.1 (base64 JSON, one keep-alive connection);
  - batch 32: cards/s, in-process and over HTTP (one request of 32 instances);
  - the server's overhead per request: HTTP median - in-process median at batch 1, and, measured on its
    own, the round trip of the same request to a server with decoding and the model taken out (target < 5 ms).
The models are randomly initialised with the preset's architecture (seeded): latency does not depend on the
weights, and no trained cloud model exists on a CPU-only machine. The Vertex AI guide's reference is 45-60 ms
per card. Run it niced: `nice -n 10 .venv/bin/python benchmarks/serve_latency.py`.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from core.config import load_preset  # noqa: E402
from core.export import export_model  # noqa: E402
from core.inference import load_model, predict_cards  # noqa: E402
from core.model import DualBranchGrader  # noqa: E402
from core.serve import Grader, create_app, start_background  # noqa: E402

SCAN_SIZE = (600, 840)  # a scanned card, 5:7, the size a phone or flatbed upload typically has


def scan_jpeg(seed: int) -> bytes:
    """A JPEG of card-like texture (smooth gradients plus noise) at SCAN_SIZE."""
    rng = np.random.default_rng(seed)
    w, h = SCAN_SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed_pair(a, b, runs: int, warmup: int) -> tuple[list[float], list[float]]:
    """Time a and b alternately (a, b, a, b, ...) so load from other processes hits both alike."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(runs):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return ta, tb


def bench_preset(name: str, runs: int, batch_runs: int, batch: int) -> dict:
    cfg = load_preset(name)
    torch.manual_seed(0)
    model = DualBranchGrader(backbone=cfg.model.backbone)
    with tempfile.TemporaryDirectory(prefix="psa-serve-bench-") as tmp:
        export_model(model, tmp, {"image_size": list(cfg.data.image_size), "sides": ["front", "back"]})
        model, config = load_model(tmp)
    card = {"front": scan_jpeg(1), "back": scan_jpeg(2)}
    instance = {side: {"b64": base64.b64encode(data).decode()} for side, data in card.items()}
    body1 = json.dumps({"instances": [instance]})
    body_n = json.dumps({"instances": [instance] * batch})

    grader = Grader(model, config)
    url, stop = start_background(create_app(grader), keep_alive_s=3600)  # one connection throughout
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def post(body: str) -> None:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")

    try:
        inproc, http1 = timed_pair(lambda: predict_cards(model, config, [card]), lambda: post(body1), runs, 3)
        inproc_n, http_n = timed_pair(lambda: predict_cards(model, config, [card] * batch),
                                      lambda: post(body_n), batch_runs, 1)
    finally:
        conn.close()
        stop()
        grader.close()
    ms = 1000.0
    return {
        "preset": name, "backbone": cfg.model.backbone, "input": "x".join(map(str, cfg.data.image_size)),
        "inproc_median_ms": statistics.median(inproc) * ms, "inproc_p95_ms": percentile(inproc, 0.95) * ms,
        "http_median_ms": statistics.median(http1) * ms, "http_p95_ms": percentile(http1, 0.95) * ms,
        "overhead_ms": (statistics.median(http1) - statistics.median(inproc)) * ms,
        "inproc_cards_per_s": batch / statistics.median(inproc_n),
        "http_cards_per_s": batch / statistics.median(http_n),
        "runs": runs, "batch": batch, "batch_runs": batch_runs,
    }


class _NoModelGrader(Grader):
    """The server with decoding and the model taken out: what is left is HTTP, JSON, base64 and the
    thread hand-offs, i.e. the server's own cost per request."""

    def decode_card(self, i: int, card: dict) -> dict:
        return {}

    def _run(self, batch: list) -> None:
        for tensors, fut in batch:
            fut.set_result([{"grade": 1}] * len(tensors))


def bench_overhead(runs: int) -> dict:
    """Round trip of the same batch-1 request (the two scans, base64) to a server without decode/model."""
    cfg = load_preset("local")
    torch.manual_seed(0)
    model = DualBranchGrader(backbone=cfg.model.backbone)
    grader = _NoModelGrader(model, {"image_size": list(cfg.data.image_size), "sides": ["front", "back"]})
    body = json.dumps({"instances": [{s: {"b64": base64.b64encode(scan_jpeg(i)).decode()}
                                      for i, s in enumerate(("front", "back"))}]})
    url, stop = start_background(create_app(grader), keep_alive_s=3600)
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def post() -> None:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        conn.getresponse().read()

    try:
        times, _ = timed_pair(post, lambda: None, runs, 5)
    finally:
        conn.close()
        stop()
        grader.close()
    return {"median_ms": statistics.median(times) * 1000, "p95_ms": percentile(times, 0.95) * 1000,
            "request_kb": len(body) / 1024, "runs": runs}


def table(rows: list[dict]) -> str:
    head = ("| preset (random init) | backbone @ input | in-process b1 median / p95 ms | HTTP b1 median / p95 ms "
            "| server overhead ms | cards/s b32 in-process | cards/s b32 HTTP |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['backbone']} @ {r['input']} | {r['inproc_median_ms']:.1f} / "
                     f"{r['inproc_p95_ms']:.1f} | {r['http_median_ms']:.1f} / {r['http_p95_ms']:.1f} | "
                     f"{r['overhead_ms']:.1f} | {r['inproc_cards_per_s']:.1f} | {r['http_cards_per_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="local,cloud",
                   help="comma-separated preset names (default local,cloud; empty: only the overhead)")
    p.add_argument("--runs", type=int, default=30, help="timed batch-1 requests per preset")
    p.add_argument("--batch", type=int, default=32, help="cards per throughput batch")
    p.add_argument("--batch-runs", type=int, default=3, help="timed batches per preset")
    p.add_argument("--quick", action="store_true", help="tiny run (tests): local only, 3 runs, batch 4")
    p.add_argument("--json", action="store_true", help="also print the rows as JSON")
    a = p.parse_args(argv)
    presets = ["local"] if a.quick else [s.strip() for s in a.presets.split(",") if s.strip()]
    runs, batch, batch_runs = (3, 4, 1) if a.quick else (a.runs, a.batch, a.batch_runs)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; scans {SCAN_SIZE[0]}x{SCAN_SIZE[1]} "
          f"JPEG; models randomly initialised with each preset's architecture", flush=True)
    rows = [bench_preset(name, runs, batch_runs, batch) for name in presets]
    print(table(rows))
    over = bench_overhead(10 if a.quick else max(a.runs, 50))
    print(f"server overhead per request without decode and model (HTTP + JSON + base64 + hand-offs, "
          f"{over['request_kb']:.0f} KiB request): median {over['median_ms']:.2f} ms, p95 {over['p95_ms']:.2f} ms "
          f"(target < 5 ms)")
    if a.json:
        print(json.dumps({"presets": rows, "overhead": over}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
