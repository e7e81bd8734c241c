"""Where stages run: what a Ray task or training worker reserves, and the torch threads it then uses."""

from __future__ import annotations

import sys
import types

import pytest

from rerank_rl.rl.orchestration import StageRunner, worker_cpus
from rerank_rl.rl.recipe import RaySection

# A head node without GPUs, a GPU node with 8 CPUs per GPU, and a dead node that must not count.
NODES = [{"Alive": True, "Resources": {"CPU": 16.0}},
         {"Alive": True, "Resources": {"CPU": 32.0, "GPU": 4.0}},
         {"Alive": False, "Resources": {"CPU": 64.0}}]


@pytest.fixture
def fake_ray(monkeypatch):
    """A `ray` module that records what tasks reserve and runs them in this process."""
    import torch

    reserved: list[dict] = []

    def remote(**options):
        reserved.append(options)
        return lambda fn: types.SimpleNamespace(remote=lambda *args: fn(*args))

    module = types.SimpleNamespace(remote=remote, get=lambda value: value, nodes=lambda: NODES,
                                   cluster_resources=lambda: {"CPU": 48.0, "GPU": 4.0})
    monkeypatch.setitem(sys.modules, "ray", module)
    threads = torch.get_num_threads()
    yield reserved
    torch.set_num_threads(threads)


def test_tasks_use_the_threads_they_reserve_not_the_clusters(fake_ray):
    import torch

    runner = StageRunner(RaySection(), "/tmp")
    assert runner.task(torch.get_num_threads) == 32  # the largest node's CPUs, not the cluster's 48
    assert fake_ray[-1]["num_cpus"] == 32 and fake_ray[-1]["num_gpus"] == 0
    assert runner.task(torch.get_num_threads, num_cpus=2) == 2 and fake_ray[-1]["num_cpus"] == 2
    assert runner.task(torch.get_num_threads, num_gpus=1) == 32 and fake_ray[-1]["num_gpus"] == 1


def test_training_workers_get_their_share_of_one_node(fake_ray):
    assert worker_cpus(workers=1, use_gpu=False) == 32
    assert worker_cpus(workers=2, use_gpu=False) == 16  # 24 each (48 / 2) would not fit beside the 16-CPU node
    assert worker_cpus(workers=3, use_gpu=False) == 16 and worker_cpus(workers=4, use_gpu=False) == 10
    assert worker_cpus(workers=64, use_gpu=False) == 1
    assert worker_cpus(workers=4, use_gpu=True) == 8  # the GPU node's 32 CPUs over its 4 GPUs
