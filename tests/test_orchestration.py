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


def test_one_training_worker_without_restarts_runs_as_a_plain_task(fake_ray, monkeypatch):
    """Ray Train's controller actors cost memory and buy nothing for one worker that is never restarted; with
    restarts or several workers the stage must still go through Ray Train."""
    import torch

    seen = []
    runner = StageRunner(RaySection(num_workers=1), "/tmp")
    runner.train("sft", lambda *args: seen.append((args, torch.get_num_threads())), "config", False)
    assert seen == [(("config", False), 32)]  # the stage's arguments, and the node's CPUs as torch threads
    assert fake_ray[-1]["num_cpus"] == 32 and fake_ray[-1]["max_calls"] == 1

    fits = []
    monkeypatch.setitem(sys.modules, "ray.train", types.SimpleNamespace(
        FailureConfig=lambda max_failures: None, RunConfig=lambda **kw: None, ScalingConfig=lambda **kw: kw))
    monkeypatch.setitem(sys.modules, "ray.train.torch", types.SimpleNamespace(
        TorchTrainer=lambda loop, scaling_config, run_config: types.SimpleNamespace(
            fit=lambda: fits.append(scaling_config["num_workers"]))))
    tasks = len(fake_ray)
    StageRunner(RaySection(num_workers=2), "/tmp").train("rl", lambda *args: None, "config", False)
    StageRunner(RaySection(num_workers=1, max_failures=1), "/tmp").train("rl", lambda *args: None, "config", False)
    assert fits == [2, 1] and len(fake_ray) == tasks


def test_a_stage_restarted_by_ray_train_resumes_from_its_checkpoint(fake_ray, monkeypatch, tmp_path):
    """Ray Train restarts a failed worker group by calling the stage again with its first arguments (resume=False):
    with ray.max_failures the restarted workers must resume, and a later fit in the same run folder starts afresh."""
    rank = {"now": 0}

    class TorchTrainer:  # runs the ranks one after the other; a failure restarts them all, as Ray Train does
        def __init__(self, loop, scaling_config, run_config):
            self.loop, self.workers, self.failures = loop, scaling_config.num_workers, run_config.failure_config
            fits.append(self)

        def fit(self):
            for _ in range(self.failures.max_failures + 1):
                try:
                    for rank["now"] in range(self.workers):
                        self.loop(None)
                    return
                except RuntimeError:
                    pass
            raise RuntimeError("out of retries")

    fits: list = []
    train = types.SimpleNamespace(FailureConfig=lambda max_failures: types.SimpleNamespace(max_failures=max_failures),
                                  RunConfig=lambda **kw: types.SimpleNamespace(**kw),
                                  ScalingConfig=lambda **kw: types.SimpleNamespace(**kw),
                                  get_context=lambda: types.SimpleNamespace(get_world_rank=lambda: rank["now"]))
    monkeypatch.setitem(sys.modules, "ray.train", train)
    monkeypatch.setitem(sys.modules, "ray.train.torch", types.SimpleNamespace(TorchTrainer=TorchTrainer))
    calls, died = [], []

    def stage(run_dir, resume):
        calls.append((rank["now"], resume))
        if rank["now"] == 1 and not died:
            died.append(True)
            raise RuntimeError("rank 1 died")

    runner = StageRunner(RaySection(num_workers=2, max_failures=1), tmp_path)
    runner.train("rl", stage, "run", False)
    assert fits[-1].failures.max_failures == 1
    assert calls == [(0, False), (1, False), (0, True), (1, True)]
    calls.clear()
    runner.train("rl", stage, "run", False)  # a new fit (a later --resume): no restart yet, so no resume
    assert calls == [(0, False), (1, False)]


def test_max_failures_below_minus_one_is_refused():
    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.errors import UserError

    with pytest.raises(UserError, match=r"ray\.max_failures must be -1 \(no limit\), 0 \(off\) or more, got -2"):
        load_recipe(CONFIG_DIR / "grouprank_tiny.yaml", ["ray.max_failures=-2"])
