"""One training process per GPU: the CustomJob's container command for a replica with N GPUs, the torchrun
arguments core.launch derives from Vertex AI's CLUSTER_SPEC (node rank, world = replicas x GPUs), and a
real single-node 2-process run on CPU (gloo) through core.launch."""
from __future__ import annotations

import json
import sys

import pytest
from torch.distributed.run import parse_args as torchrun_parse_args

from cockpit.vertex import build_custom_job, custom_job_json, launch_command
from core.config import load_preset
from core.distributed import dist_env_from_environ
from core.launch import main as launch_main
from core.launch import torchrun_args
from tests.trainer_runs import run_trainer

IMAGE = "us-central1-docker.pkg.dev/proj/psa/psa-trainer:abc1234"


def _job(**cloud):
    cfg = load_preset("cloud", ["cloud.project=proj", "cloud.bucket=gs://my-bucket",
                                *[f"cloud.{k}={v}" for k, v in cloud.items()]])
    return build_custom_job(cfg, "cloud", IMAGE, [], "psa-cloud-20250101-000000")


def cluster_spec(replicas: int, node: int) -> str:
    pools = {"workerpool0": ["chief-host:2222"]}
    if replicas > 1:
        pools["workerpool1"] = [f"worker-{i}:2222" for i in range(replicas - 1)]
    task = {"type": "workerpool0", "index": 0} if node == 0 else {"type": "workerpool1", "index": node - 1}
    return json.dumps({"cluster": pools, "task": task})


def test_a_one_gpu_replica_runs_the_images_entrypoint():
    assert launch_command(1) == [] and launch_command(0) == []
    assert list(_job().job_spec.worker_pool_specs[0].container_spec.command) == []


def test_four_gpus_per_replica_start_four_processes_in_every_pool():
    job = _job(machine_type="n1-highmem-16", accelerator_count=4, replica_count=2)
    pools = job.job_spec.worker_pool_specs
    for pool in pools:
        assert list(pool.container_spec.command) == ["python", "-m", "core.launch", "--nproc-per-node=4", "--"]
        assert pool.container_spec.args == pools[0].container_spec.args
        assert pool.machine_spec.accelerator_count == 4
    dry_run = json.loads(custom_job_json(job))
    assert dry_run["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["command"][3] == "--nproc-per-node=4"


def test_without_cluster_spec_the_launcher_is_one_standalone_node():
    assert torchrun_args(2, ["--preset", "smoke"], env={}) == [
        "--standalone", "--nnodes=1", "--nproc-per-node=2", "-m", "core.train", "--preset", "smoke"]


@pytest.mark.parametrize("replicas, gpus", [(1, 4), (3, 4), (2, 2)])
def test_every_process_of_a_multi_node_job_gets_a_distinct_rank(replicas, gpus):
    """torchrun's static rendezvous gives node k's local rank j the global rank k x N + j; core.distributed
    must derive the same rank and world from CLUSTER_SPEC, or it refuses to start."""
    ranks = []
    for node in range(replicas):
        env = {"CLUSTER_SPEC": cluster_spec(replicas, node)}
        parsed = torchrun_parse_args(torchrun_args(gpus, ["--preset", "cloud"], env=env))
        assert (parsed.nnodes, parsed.node_rank, parsed.nproc_per_node) == (str(replicas), node, str(gpus))
        assert (parsed.master_addr, parsed.master_port) == ("chief-host", 2222)
        assert (parsed.module, parsed.training_script, parsed.training_script_args) == (
            True, "core.train", ["--preset", "cloud"])
        for local in range(gpus):
            worker_env = {**env, "TORCHELASTIC_RUN_ID": "job", "LOCAL_RANK": str(local),
                          "LOCAL_WORLD_SIZE": str(gpus), "RANK": str(parsed.node_rank * gpus + local),
                          "WORLD_SIZE": str(replicas * gpus), "MASTER_ADDR": "chief-host", "MASTER_PORT": "2222"}
            denv = dist_env_from_environ(worker_env)  # raises if its own rank math disagrees with torchrun's
            assert (denv.world_size, denv.local_rank, denv.launcher) == (replicas * gpus, local, "torchrun")
            ranks.append(denv.rank)
    assert sorted(ranks) == list(range(replicas * gpus))


def test_a_malformed_cluster_spec_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("CLUSTER_SPEC", "{not json")
    assert launch_main(["--nproc-per-node=2", "--", "--preset", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CLUSTER_SPEC: not valid JSON") and err.count("\n") == 1


@pytest.mark.slow
def test_two_processes_through_the_launcher_train_the_smoke_preset(smoke_splits, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core.launch", "--nproc-per-node=2", "--", "--log-format", "json",
           "--preset", "smoke", "--output-dir", str(out), "--set", f"data.splits={smoke_splits}",
           "--set", "training.max_steps_per_epoch=1"]
    run = run_trainer([], tmp_path / "logs", cmd=cmd, env={"PSA_DIST_BACKEND": "gloo"})
    assert run.code == 0, run.stderr[-3000:]
    (start,) = run.events("start")
    assert start["world_size"] == 2
    assert run.done["step"] == 3  # 1 + 2 epochs of one step each; only rank 0 reports
    assert (out / "model" / "psa_dual_branch_state_dict.pth").is_file()


@pytest.mark.slow
def test_a_workers_exit_code_comes_back_from_the_launcher(tmp_path):
    cmd = [sys.executable, "-m", "core.launch", "--nproc-per-node=2", "--", "--preset", "smoke",
           "--output-dir", str(tmp_path), "--set", "training.batch_size=0"]
    run = run_trainer([], tmp_path / "logs", cmd=cmd)
    assert run.code == 2  # core.train's "bad input", not torchrun's generic 1
    assert "training.batch_size = 0 must be >= 1" in run.stderr
