"""Latency of the live log tail: from an entry written on the fake Cloud Logging server to its LogLine
arriving from cockpit.logs.LogTailer (real gRPC on 127.0.0.1, the real LoggingServiceV2Client transport).

This measures the client path only (stream read, LogEntry -> LogLine, de-dup). Against the real service,
add Cloud Logging's ingestion delay and the tail's buffer_window (default 2 s), which the fake does not
impose. Usage: python benchmarks/tail_latency.py [--n 20] [--gap 0.05]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(n: int, gap_s: float) -> list[float]:
    from tests.fakes.logging_server import FakeLogging

    with FakeLogging() as fake:
        os.environ["PSA_LOGGING_ENDPOINT"] = fake.address
        from cockpit import clients
        from cockpit.logs import LogTailer

        stop = threading.Event()
        tailer = LogTailer(fake.project, "bench", clients.logging_client, stop_event=stop, history=False,
                           check_interval_s=0.05)
        written: dict[str, float] = {}
        latencies: list[float] = []
        done = threading.Event()

        def consume() -> None:
            for line in tailer:
                if line.text in written:
                    latencies.append(time.perf_counter() - written[line.text])
                    if len(latencies) == n:
                        done.set()

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while not fake.tail_requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the session is subscribed
        for i in range(n):
            text = f"line {i}"
            written[text] = time.perf_counter()
            fake.append("bench", text=text)
            time.sleep(gap_s)
        done.wait(10)
        stop.set()
        reader.join(5)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between entries")
    args = parser.parse_args()
    lat = sorted(x * 1000 for x in measure(args.n, args.gap))
    if len(lat) < args.n:
        print(f"only {len(lat)} of {args.n} entries arrived", file=sys.stderr)
        return 1
    print(f"tail latency over {len(lat)} entries: median {statistics.median(lat):.2f} ms, "
          f"p90 {lat[int(0.9 * (len(lat) - 1))]:.2f} ms, min {lat[0]:.2f} ms, max {lat[-1]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
