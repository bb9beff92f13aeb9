"""Map a function over items on all cores with threads, results in input order.

Threads, not processes: the work this is for (rendering synthetic cards, decoding JPEGs, PIL resizes and
numpy filters for the uint8 caches, probing a user's scans in core.splits) runs mostly in C code that
releases the GIL, so two threads on a 2-core machine do it in about 0.65x the time
(benchmarks/bench_prepare.py), without pickling images between processes or forking a process that
already runs torch's thread pool.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> Iterator[R]:
    """Yield fn(item) for each item, in order, computed on `workers` threads (default: the cores, up to 8).

    At most 4 x workers items are in flight, so a long input does not hold every finished result in memory
    while the consumer writes them out. The first exception (a bad image, Ctrl-C) is raised here, and the
    items not yet started are dropped instead of run to the end.
    """
    workers = workers or default_workers()
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
