"""`python -m core.launch --nproc-per-node N -- ARGS...`: one `core.train` process per GPU of this machine.

Vertex AI starts one container per replica; a replica with N GPUs needs N training processes, one per
GPU, or N - 1 of the GPUs it bills for sit idle. torchrun starts them. Each replica is one torchrun node:
the node rank and the chief's address come from Vertex AI's CLUSTER_SPEC, so the world size is
replicas x N and a process's rank is node x N + local rank, the rule core/distributed.py checks when the
workers start. Without CLUSTER_SPEC it is a single machine (torchrun --standalone). The cockpit makes
this the container command when accelerator_count > 1 (cockpit/vertex.py).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

from core.distributed import _parse_cluster_spec

TRAIN_MODULE = "core.train"


def torchrun_args(nproc_per_node: int, train_args: list[str], env: Mapping[str, str] = os.environ) -> list[str]:
    """torchrun's argument list for this machine: its node of the cluster, N processes, then core.train."""
    if env.get("CLUSTER_SPEC"):
        node, nodes, host, port = _parse_cluster_spec(env["CLUSTER_SPEC"])
        # The static rendezvous: node 0's agent serves the store on the chief's CLUSTER_SPEC port.
        where = [f"--nnodes={nodes}", f"--node-rank={node}", f"--master-addr={host}", f"--master-port={port}"]
    else:
        where = ["--standalone", "--nnodes=1"]
    return [*where, f"--nproc-per-node={nproc_per_node}", "-m", TRAIN_MODULE, *train_args]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.launch", allow_abbrev=False,
                                description="Start one core.train process per GPU (torchrun), on this machine "
                                            "or as one node of a Vertex AI job (CLUSTER_SPEC).",
                                epilog="Exit code: the first failed process's own code (2 bad input, 75 "
                                       "preempted), else 0.")
    p.add_argument("--nproc-per-node", type=int, required=True, metavar="N",
                   help="training processes on this machine: one per GPU")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the arguments of python -m core.train")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rest = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    if args.nproc_per_node < 1:
        print(f"error: --nproc-per-node {args.nproc_per_node}: expected at least 1", file=sys.stderr)
        return 2
    try:
        argv_torchrun = torchrun_args(args.nproc_per_node, rest)
    except ValueError as exc:  # a malformed CLUSTER_SPEC: one line, as core.train reports it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv_torchrun)
    except ChildFailedError as exc:
        # torchrun itself would exit 1 for any failure; keep the worker's code (75 = preempted, resume).
        codes = [failure.exitcode for failure in exc.failures.values()]
        return next((code for code in codes if code > 0), 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
