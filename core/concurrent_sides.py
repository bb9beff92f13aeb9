"""A card's two sides through their networks at the same time, each on half the CPU threads.

Why: on the CPU a phase-2 step runs the back's backbone and crop encoder, then the front's, every op
split over the cores by OpenMP, and the small convolutions of a 72x96 view and 48x48 crops split poorly
(the local preset's step: about 750 ms on one thread, 450 ms on two, on a 2-core EPYC). The two sides share
no weights, so each can run whole on its own thread with half the cores: 8 - 17% less time per phase-2 step
there (benchmarks/bench_step.py prints both, alternated; docs/design.md §9). The maths is the same op for
op: on two threads it equals the serial step on one thread to the bit (tests/test_concurrent_sides.py);
against the serial step on two it differs by how an op splits its sums over threads, and it repeats
exactly from run to run and across a resume. More threads than cores would cost far more than this gains
(one side on two threads beside the other on one: 9% slower; two and two: 9x), so the split is exact.

How: `SideThreads.both(back_fn, front_fn)` runs the front's function on one worker thread and the back's
on the caller's, each with its share of the OpenMP threads (a per-thread setting), and hands the worker the
caller's grad mode and autocast state (both are per-thread too). Under autograd, `both_sides` wraps that
in one Function holding both graphs, whose backward runs the two sides' backward the same way; the loop's
`loss.backward()` does not change. Only the networks run there: dropout and the heads (which draw from
the global RNG, or are small) stay on the caller's thread in the serial order, so a seeded run draws the
same random numbers either way (core.model.Branch.features / heads).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
from torch import Tensor


class SideThreads:
    """One worker thread for the front side; the caller's thread does the back. `threads` is the OpenMP
    thread count of the whole process (torch.get_num_threads()), split between the two."""

    def __init__(self, threads: int):
        if threads < 2:
            raise ValueError(f"SideThreads needs 2 or more threads to split, got {threads}")
        self.threads, self.worker_threads = threads, threads // 2
        self.caller_threads = threads - self.worker_threads
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psa-front-side",
                                        initializer=_set_own_threads, initargs=(self.worker_threads,))

    def both(self, back_fn: Callable[[], object], front_fn: Callable[[], object]) -> tuple:
        """(back_fn(), front_fn()), run at the same time; an exception from either is raised here."""
        front = self._pool.submit(_under_callers_state(front_fn))
        torch.set_num_threads(self.caller_threads)
        try:
            back = back_fn()
        finally:
            torch.set_num_threads(self.threads)
            done = front.exception()  # wait for the worker either way: it must not outlive this step
        if done is not None:
            raise done
        return back, front.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _set_own_threads(n: int) -> None:
    """This thread's OpenMP thread count, for good. torch sets a thread's count from the process-wide one
    the first time the thread asks for it (a per-thread lazy start); asking first makes sure that start has
    happened, so it cannot later undo `n` with whatever count the caller's thread holds at that moment."""
    torch.get_num_threads()
    torch.set_num_threads(n)


def _under_callers_state(fn: Callable[[], object]) -> Callable[[], object]:
    """`fn` to run on the worker under the caller's grad mode and CPU autocast (both are per-thread)."""
    grad, autocast, dtype = torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def run():
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=dtype, enabled=autocast):
            return fn()
    return run


class _BothSides(torch.autograd.Function):
    """Forward: both sides' features at once, each keeping its own graph. Backward: both graphs at once.
    `anchor` is an empty tensor that requires grad: a Function whose inputs need no gradient (images do
    not) is never called backward, and the weights it should reach are not its inputs."""

    @staticmethod
    def forward(ctx, threads: SideThreads, back_fn, front_fn, anchor: Tensor):
        with torch.enable_grad():  # autograd turns it off inside a Function's forward; the graphs need it
            back, front = threads.both(back_fn, front_fn)
        ctx.threads, ctx.graphs = threads, (back, front)
        return back.detach(), front.detach()

    @staticmethod
    def backward(ctx, grad_back: Tensor, grad_front: Tensor):
        (back, front), threads = ctx.graphs, ctx.threads
        ctx.graphs = None  # the graphs are freed as their backward runs; drop the references too
        threads.both(lambda: _backward(back, grad_back), lambda: _backward(front, grad_front))
        return None, None, None, None


def _backward(output: Tensor, grad: Tensor | None) -> None:
    if grad is not None:  # None: that side's features reached no loss term
        torch.autograd.backward(output, grad)


_ANCHOR = torch.empty(0, requires_grad=True)


def both_sides(threads: SideThreads, back_fn: Callable[[], Tensor],
               front_fn: Callable[[], Tensor]) -> tuple[Tensor, Tensor]:
    """(back_fn(), front_fn()) computed at the same time, gradients included when grad mode is on."""
    if not torch.is_grad_enabled():
        return threads.both(back_fn, front_fn)
    return _BothSides.apply(threads, back_fn, front_fn, _ANCHOR)


def side_threads_for(enabled: bool, device: torch.device, world_size: int, compiled: bool) -> SideThreads | None:
    """The trainer's SideThreads, or None where running the sides at once does not apply: not asked for
    (model.concurrent_sides), not a CPU (a GPU queues both sides' kernels without waiting on either),
    several processes (DDP reduces gradients as backward produces them, in one order), torch.compile (one
    graph for the whole model) or a single thread to split."""
    threads = torch.get_num_threads()
    if not enabled or device.type != "cpu" or world_size > 1 or compiled or threads < 2:
        return None
    return SideThreads(threads)
