"""core.distributed: CLUSTER_SPEC / torchrun mapping and real gloo collectives."""
from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from core.distributed import (DistEnv, all_reduce_sum, any_rank_true, barrier, broadcast_object, cleanup,
                              dist_env_from_environ, gather_objects, init_distributed, is_main)


def spec(task_type: str = "workerpool0", index: int = 0, workers: int = 2) -> str:
    return json.dumps({
        "cluster": {"workerpool0": ["chief-host:2222"],
                    "workerpool1": [f"worker-{i}:2222" for i in range(workers)]},
        "task": {"type": task_type, "index": index}})


# ---------------------------------------------------------------- environment mapping

def test_cluster_spec_chief_is_rank_zero_with_master_from_workerpool0():
    denv = dist_env_from_environ({"CLUSTER_SPEC": spec("workerpool0", 0)})
    assert denv == DistEnv(rank=0, local_rank=0, world_size=3, master_addr="chief-host",
                           master_port=2222, is_chief=True, backend="auto", launcher="cluster_spec")


def test_cluster_spec_worker_pool_index_i_is_rank_one_plus_i():
    denv = dist_env_from_environ({"CLUSTER_SPEC": spec("workerpool1", 1)})
    assert (denv.rank, denv.world_size, denv.is_chief) == (2, 3, False)
    assert (denv.master_addr, denv.master_port) == ("chief-host", 2222)


def test_cluster_spec_single_replica_is_world_of_one():
    one = json.dumps({"cluster": {"workerpool0": ["h:2222"]}, "task": {"type": "workerpool0", "index": 0}})
    assert dist_env_from_environ({"CLUSTER_SPEC": one}).world_size == 1


def test_cluster_spec_with_torchrun_processes_per_node():
    env = {"CLUSTER_SPEC": spec("workerpool1", 0), "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
           "TORCHELASTIC_RUN_ID": "x", "RANK": "5", "WORLD_SIZE": "12",
           "MASTER_ADDR": "chief-host", "MASTER_PORT": "29400"}
    denv = dist_env_from_environ(env)
    assert (denv.rank, denv.local_rank, denv.world_size) == (5, 1, 12)
    assert (denv.master_port, denv.launcher) == (29400, "torchrun")


def test_cluster_spec_disagreeing_with_torchrun_rank_is_an_error():
    env = {"CLUSTER_SPEC": spec("workerpool1", 0), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
           "TORCHELASTIC_RUN_ID": "x", "RANK": "0", "WORLD_SIZE": "6"}
    with pytest.raises(ValueError, match=r"rank 2 of 6 but torchrun set RANK=0 .*--node_rank 1"):
        dist_env_from_environ(env)


def test_torchrun_env_fallback_without_cluster_spec():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29501", "TORCHELASTIC_RUN_ID": "r"}
    assert dist_env_from_environ(env) == DistEnv(3, 1, 4, "10.0.0.1", 29501, False, "auto", "torchrun")


def test_no_environment_is_a_single_process():
    denv = dist_env_from_environ({})
    assert (denv.rank, denv.world_size, denv.is_chief, denv.launcher) == (0, 1, True, "single")


@pytest.mark.parametrize("raw, message", [
    ("{not json", r"^CLUSTER_SPEC: not valid JSON"),
    ('{"task": {"type": "workerpool0", "index": 0}}', r"^CLUSTER_SPEC: 'cluster' is missing"),
    ('{"cluster": {"workerpool0": []}, "task": {"type": "workerpool0", "index": 0}}',
     r"workerpool0 is missing or empty"),
    ('{"cluster": {"workerpool0": ["nohostport"]}, "task": {"type": "workerpool0", "index": 0}}',
     r"workerpool0\[0\] 'nohostport': expected 'host:port'"),
    ('{"cluster": {"workerpool0": ["h:1"]}, "task": {"type": "workerpool2", "index": 0}}',
     r"task.type 'workerpool2' is not a trainer pool"),
    ('{"cluster": {"workerpool0": ["h:1"]}, "task": {"type": "workerpool0", "index": 3}}',
     r"task.index 3 is out of range for workerpool0 \(1 entries\)"),
    ('{"cluster": {"workerpool0": ["h:1"]}}', r"'task' is missing"),
])
def test_malformed_cluster_spec_is_a_one_line_value_error(raw, message):
    with pytest.raises(ValueError, match=message) as err:
        dist_env_from_environ({"CLUSTER_SPEC": raw})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("env, message", [
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, r"RANK=2 WORLD_SIZE=2: expected 0 <= RANK"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, r"RANK='x': expected an integer"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, r"MASTER_ADDR is not set"),
    ({"LOCAL_RANK": "1"}, r"LOCAL_RANK=1 is set without LOCAL_WORLD_SIZE"),
])
def test_bad_rank_environment_is_a_one_line_value_error(env, message):
    with pytest.raises(ValueError, match=message):
        dist_env_from_environ(env)


# ---------------------------------------------------------------- real process group (gloo, 2 ranks)

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo_worker(rank: int, port: int, out_dir: str) -> None:
    cluster = {"cluster": {"workerpool0": [f"127.0.0.1:{port}"], "workerpool1": ["127.0.0.1:1"]},
               "task": {"type": "workerpool0" if rank == 0 else "workerpool1", "index": 0}}
    denv = dist_env_from_environ({"CLUSTER_SPEC": json.dumps(cluster)})
    init_distributed(denv, torch.device("cpu"))
    try:
        summed = all_reduce_sum(torch.tensor([rank + 1.0, 10.0]))
        result = {
            "rank": denv.rank,
            "is_main": is_main(),
            "sum": summed.tolist(),
            "any_when_rank1_true": any_rank_true(rank == 1),
            "any_when_none_true": any_rank_true(False),
            "broadcast": broadcast_object({"from": rank}),
            "gathered": gather_objects(f"rng-{rank}"),
        }
        barrier()
    finally:
        cleanup()
    with open(f"{out_dir}/rank{rank}.json", "w") as fh:
        json.dump(result, fh)


def test_two_gloo_processes_reduce_and_agree_on_preemption(tmp_path):
    mp.spawn(_gloo_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r, res in enumerate(results):
        assert res["rank"] == r and res["is_main"] == (r == 0)
        assert res["sum"] == [3.0, 20.0]
        assert res["any_when_rank1_true"] is True
        assert res["any_when_none_true"] is False
        assert res["broadcast"] == {"from": 0}
        assert res["gathered"] == ["rng-0", "rng-1"]


def test_collectives_are_identity_without_a_process_group():
    t = torch.tensor([2.0])
    assert all_reduce_sum(t) is t and t.item() == 2.0
    assert any_rank_true(True) and not any_rank_true(False)
    assert broadcast_object("x") == "x" and gather_objects("x") == ["x"] and is_main()
