"""Who am I in a multi-process run, and the few collectives the trainer needs.

Rank, world size and master address come from Vertex AI's CLUSTER_SPEC (docs/design.md §5), else from
torchrun's RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT, else a single process. Every helper is
a no-op (or the identity) when no process group is initialised, so single-process code calls them
unconditionally.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.distributed as dist

TRAINER_POOLS = ("workerpool0", "workerpool1")
DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT
    is_chief: bool = True
    # "auto": nccl on a CUDA device, gloo on CPU, decided in init_distributed; PSA_DIST_BACKEND overrides.
    backend: str = "auto"
    # "single" | "cluster_spec" | "torchrun" | "env". Under torchrun the agent already serves the
    # rendezvous store on MASTER_PORT, so workers must join it (env://) rather than open their own.
    launcher: str = "single"


class DistributedConfigError(ValueError):
    """CLUSTER_SPEC or the RANK/WORLD_SIZE/MASTER_* variables are wrong; the message names which."""


def dist_env_from_environ(env: Mapping[str, str] = os.environ) -> DistEnv:
    """Read CLUSTER_SPEC, else torchrun/manual RANK+WORLD_SIZE, else single process.

    With CLUSTER_SPEC, each trainer replica is a node: workerpool0 entries come first (the chief is
    node 0), then workerpool1. If torchrun runs N processes per node (LOCAL_RANK/LOCAL_WORLD_SIZE set),
    world = nodes * N and rank = node * N + local_rank. Raises ValueError with a one-line message.
    """
    backend = env.get("PSA_DIST_BACKEND", "auto") or "auto"
    if backend not in ("auto", "nccl", "gloo"):
        raise DistributedConfigError(f"PSA_DIST_BACKEND={backend!r}: expected nccl, gloo or auto")
    local_rank, local_world = _local_ranks(env)
    torchrun = bool(env.get("TORCHELASTIC_RUN_ID")) or "LOCAL_WORLD_SIZE" in env
    if env.get("CLUSTER_SPEC"):
        node, nodes, addr, port = _parse_cluster_spec(env["CLUSTER_SPEC"])
        rank, world = node * local_world + local_rank, nodes * local_world
        if torchrun and "RANK" in env and "WORLD_SIZE" in env:
            t_rank, t_world = _int_env(env, "RANK"), _int_env(env, "WORLD_SIZE")
            if (t_rank, t_world) != (rank, world):
                raise DistributedConfigError(
                    f"CLUSTER_SPEC makes this process rank {rank} of {world} but torchrun set RANK="
                    f"{t_rank} WORLD_SIZE={t_world}: launch torchrun with --nnodes {nodes} --node_rank "
                    f"{node}")
            addr = env.get("MASTER_ADDR", addr)
            port = _int_env(env, "MASTER_PORT", port)
        return DistEnv(rank, local_rank, world, addr, port, rank == 0, backend,
                       "torchrun" if torchrun else "cluster_spec")
    if "RANK" in env or "WORLD_SIZE" in env:
        world = _int_env(env, "WORLD_SIZE", 1)
        rank = _int_env(env, "RANK", 0)
        if world < 1 or not 0 <= rank < world:
            raise DistributedConfigError(f"RANK={rank} WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE")
        if world > 1 and not env.get("MASTER_ADDR"):
            raise DistributedConfigError(f"WORLD_SIZE={world} but MASTER_ADDR is not set")
        return DistEnv(rank, local_rank, world, env.get("MASTER_ADDR", "127.0.0.1"),
                       _int_env(env, "MASTER_PORT", DEFAULT_MASTER_PORT), rank == 0, backend,
                       "torchrun" if torchrun else "env")
    return DistEnv(backend=backend)


def _int_env(env: Mapping[str, str], key: str, default: int | None = None) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        if default is None:
            raise DistributedConfigError(f"{key} is not set")
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedConfigError(f"{key}={raw!r}: expected an integer") from None


def _local_ranks(env: Mapping[str, str]) -> tuple[int, int]:
    local_rank = _int_env(env, "LOCAL_RANK", 0)
    if "LOCAL_WORLD_SIZE" not in env:
        if local_rank != 0:
            raise DistributedConfigError(f"LOCAL_RANK={local_rank} is set without LOCAL_WORLD_SIZE")
        return 0, 1
    local_world = _int_env(env, "LOCAL_WORLD_SIZE")
    if local_world < 1 or not 0 <= local_rank < local_world:
        raise DistributedConfigError(f"LOCAL_RANK={local_rank} LOCAL_WORLD_SIZE={local_world}: expected "
                         "0 <= LOCAL_RANK < LOCAL_WORLD_SIZE")
    return local_rank, local_world


def _parse_cluster_spec(raw: str) -> tuple[int, int, str, int]:
    """-> (node index, number of trainer nodes, master host, master port)."""
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DistributedConfigError(f"CLUSTER_SPEC: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(spec, dict):
        raise DistributedConfigError("CLUSTER_SPEC: expected a JSON object with keys 'cluster' and 'task'")
    cluster, task = spec.get("cluster"), spec.get("task")
    if not isinstance(cluster, dict):
        raise DistributedConfigError("CLUSTER_SPEC: 'cluster' is missing or not an object of pool -> [host:port]")
    if not isinstance(task, dict):
        raise DistributedConfigError("CLUSTER_SPEC: 'task' is missing or not an object with 'type' and 'index'")
    pools = {}
    for name in TRAINER_POOLS:
        hosts = cluster.get(name, [])
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise DistributedConfigError(f"CLUSTER_SPEC: cluster.{name} must be a list of 'host:port' strings")
        pools[name] = hosts
    if not pools["workerpool0"]:
        raise DistributedConfigError("CLUSTER_SPEC: cluster.workerpool0 is missing or empty (the chief's address)")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in TRAINER_POOLS:
        raise DistributedConfigError(f"CLUSTER_SPEC: task.type {kind!r} is not a trainer pool (expected workerpool0 "
                         "or workerpool1; pools 2 and 3 are the reduction server and evaluator)")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(pools[kind]):
        raise DistributedConfigError(f"CLUSTER_SPEC: task.index {index!r} is out of range for {kind} "
                         f"({len(pools[kind])} entries)")
    host, sep, port = pools["workerpool0"][0].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DistributedConfigError(f"CLUSTER_SPEC: cluster.workerpool0[0] {pools['workerpool0'][0]!r}: "
                         "expected 'host:port'")
    node = index if kind == "workerpool0" else len(pools["workerpool0"]) + index
    return node, len(pools["workerpool0"]) + len(pools["workerpool1"]), host, int(port)


# ---------------------------------------------------------------- process group and collectives

_DEVICE: torch.device = torch.device("cpu")  # where collective tensors live (cuda for nccl)


def init_distributed(denv: DistEnv, device: torch.device | str) -> None:
    """Join the process group when world_size > 1: nccl for a CUDA device, gloo on CPU."""
    global _DEVICE
    device = torch.device(device)
    if denv.world_size <= 1 or dist.is_initialized():
        return
    backend = denv.backend if denv.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise DistributedConfigError(f"backend nccl needs a CUDA device, got {device}")
    if device.type == "cuda":
        torch.cuda.set_device(device if device.index is not None else denv.local_rank)
        _DEVICE = torch.device("cuda", torch.cuda.current_device())
    else:
        _DEVICE = torch.device("cpu")
    if denv.launcher == "torchrun":
        dist.init_process_group(backend, init_method="env://")
    else:
        dist.init_process_group(backend, init_method=f"tcp://{denv.master_addr}:{denv.master_port}",
                                rank=denv.rank, world_size=denv.world_size)


def wrap_model(model: torch.nn.Module, compile_model: bool, device: torch.device) -> torch.nn.Module:
    """The model as trained: torch.compile'd when asked, DDP-wrapped when there are several ranks."""
    net = torch.compile(model) if compile_model else model
    if dist.is_initialized() and dist.get_world_size() > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    return net


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum across ranks, in place; returns the tensor (on its original device)."""
    if not dist.is_initialized():
        return tensor
    work = tensor if tensor.device == _DEVICE else tensor.to(_DEVICE)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    if work is not tensor:
        tensor.copy_(work)
    return tensor


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (pickled)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=_DEVICE)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (pickled; e.g. per-rank RNG states)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank. DDP broadcasts them at the start of each
    forward, so after an epoch's last forward each rank holds the statistics of its own last batch: each
    would evaluate its shard with a different model, none of them the one rank 0 saves."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def any_rank_true(flag: bool) -> bool:
    """True on every rank if it is True on any rank (preemption agreement at a step boundary)."""
    if not dist.is_initialized():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_DEVICE)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
