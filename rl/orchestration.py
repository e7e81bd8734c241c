"""Where stages run. Stages are plain functions; this layer only decides on which Ray workers they execute.

- `ray.enabled: false`: everything runs in this process (debugging, tests).
- otherwise `ray.init()` starts a local cluster on this machine's cores, or joins `ray.address` on a cluster;
  training stages run inside Ray Train workers (TorchTrainer: gloo on CPU, NCCL on GPU, `ray.num_workers` of
  them), other stages as Ray tasks; so does a training stage of one worker without DeepSpeed or `ray.max_failures`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

_FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "RERANK_RL_CACHE", "TOKENIZERS_PARALLELISM",
                  "DS_BUILD_OPS", "DS_ACCELERATOR", "OMP_WAIT_POLICY", "TENSORBOARD_LOGGING_DIR", "PYTHONHASHSEED")


def is_main_process() -> bool:
    """True on the worker that should write shared outputs (rank 0), and outside distributed runs."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


class StageRunner:
    """`quiet`: Ray's messages go to run_dir/logs/driver.log and workers' output is not forwarded to this console
    (stages given a `log` write theirs to it; see rl/console.py)."""

    def __init__(self, ray_section, run_dir: Path, quiet: bool = False):
        self.section, self.run_dir = ray_section, Path(run_dir).resolve()
        self.started, self.quiet = False, quiet

    def __enter__(self):
        if self.section.enabled:
            import ray

            if not ray.is_initialized():
                if self.quiet:
                    from rerank_rl.rl.console import logs_dir, ray_logs_to

                    ray_logs_to(logs_dir(self.run_dir) / "driver.log")
                env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
                runtime_env = {"env_vars": env, "worker_process_setup_hook": f"{__name__}.quiet_ray_workers"}
                ray.init(address=self.section.address or None, include_dashboard=False,
                         log_to_driver=not self.quiet, runtime_env=runtime_env, configure_logging=False)
                self.started = True
        return self

    def __exit__(self, *exc):
        if self.started:
            import ray

            ray.shutdown()

    def task(self, fn: Callable, *args, num_cpus: float | None = None, num_gpus: float = 0, log: Path | None = None):
        """Run `fn(*args)` as a Ray task (or inline) and return its result. The task reserves `num_cpus` (default:
        all of one node's, as stages run one after another) and gives torch as many threads as it reserved. Its
        output goes to `log` when given."""
        if log is not None:
            from rerank_rl.rl.console import logged

            fn = logged(fn, log)
        if not self.section.enabled:
            return fn(*args)
        import ray

        node = max(node_cpus(gpu=num_gpus > 0), 1)
        cpus = min(num_cpus or node, node)
        # max_calls=1: the worker exits after the task, so a stage's model and torch's caches are freed before the
        # next stage starts instead of idling in Ray's worker pool.
        remote = ray.remote(num_cpus=cpus, num_gpus=num_gpus, max_retries=0, max_calls=1)(
            _with_threads(fn, int(max(1, cpus))))
        return ray.get(remote.remote(*args))

    def train(self, name: str, fn: Callable, *args, log: Path | None = None) -> None:
        """Run training stage `fn(*args)` on `ray.num_workers` Ray Train workers (or inline). Outputs go to disk,
        the workers' console output to `log` when given. `fn`'s last argument is its `resume` flag: with
        `ray.max_failures`, Ray Train restarts dead workers and the restarted stage resumes from its checkpoint."""
        failures = getattr(self.section, "max_failures", 0)  # getattr: a config pickled before the key existed
        if self.section.enabled and failures:
            markers = self.run_dir / "ray" / name / "started"
            shutil.rmtree(markers, ignore_errors=True)  # this fit's first start leaves them
            fn = _resume_on_restart(fn, markers)
        if log is not None:
            from rerank_rl.rl.console import logged

            fn = logged(fn, log)
        if not self.section.enabled:
            fn(*args)
            return
        workers = self.section.num_workers
        per_worker = worker_cpus(workers, self.section.use_gpu)
        if workers == 1 and not self.section.deepspeed and not failures:
            # One worker with nothing to restart needs none of Ray Train: a plain task skips its controller actors
            # and process group (measured: ~0.6 GiB of the main job's peak, benchmarks/RESULTS.md).
            self.task(fn, *args, num_cpus=per_worker, num_gpus=1 if self.section.use_gpu else 0)
            return
        if workers == 1 and not self.section.deepspeed:  # DeepSpeed needs its process group, even of one
            fn = _single_process(fn)
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        loop = _with_threads(fn, per_worker)
        trainer = TorchTrainer(
            lambda _: loop(*args),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=self.section.use_gpu,
                                         resources_per_worker={"CPU": per_worker}),
            run_config=RunConfig(name=name, storage_path=str(self.run_dir / "ray"),
                                 failure_config=FailureConfig(max_failures=failures)),
        )
        trainer.fit()


def _nodes() -> list[dict]:
    """Resources of the live nodes of the cluster."""
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def worker_cpus(workers: int, use_gpu: bool) -> int:
    """CPUs (and torch threads) per training worker: on GPU, a GPU node's CPUs shared among its GPUs; on CPU, the
    most that still places every worker (a worker sits on one node, so the cluster's total is no guide)."""
    nodes = _nodes()
    if use_gpu:
        return max(1, int(min((n.get("CPU", 1) // n["GPU"] for n in nodes if n.get("GPU")), default=1)))
    for share in range(int(node_cpus()), 1, -1):
        if sum(int(n.get("CPU", 0) // share) for n in nodes) >= workers:
            return share
    return 1


def node_cpus(gpu: bool = False) -> float:
    """CPUs of the largest node (with a GPU, when `gpu`): the most one task or worker can reserve."""
    return max((n.get("CPU", 0) for n in _nodes() if not gpu or n.get("GPU")), default=1)


def quiet_ray_workers() -> None:
    """Run in every Ray worker of the job. Without the dashboard, Ray Train's placement-group cleaner cannot query
    actor states and would warn about it every second for the whole training stage."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


_DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK")


def _single_process(fn: Callable) -> Callable:
    """A lone Ray Train worker still gets a process group and rank variables, so accelerate would wrap the model in
    DistributedDataParallel for nothing (and with find_unused_parameters, an extra autograd pass per step). Drop
    both: the trainer then sees a plain single process."""

    def wrapped(*args):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() == 1:
            dist.destroy_process_group()
            for key in _DISTRIBUTED_ENV:
                os.environ.pop(key, None)
        return fn(*args)

    wrapped.__name__ = wrapped.__qualname__ = getattr(fn, "__name__", "stage")
    return wrapped


def _resume_on_restart(fn: Callable, markers: Path) -> Callable:
    """Ray Train restarts a failed worker group by calling the stage again with the same arguments, `resume`
    (the last) included, which would retrain from step 0. Each rank leaves a marker on the shared run folder when it
    starts; finding its own marker means this is a restart, and the stage then resumes from its last checkpoint."""

    def wrapped(*args):
        from ray.train import get_context

        rank = get_context().get_world_rank()
        marker = markers / f"rank-{rank}"
        restarted = marker.exists()
        markers.mkdir(parents=True, exist_ok=True)
        marker.touch()
        if restarted:  # a write, not print: Ray Train's patched print would log the line twice
            sys.stdout.write(f"rank {rank}: restarted by Ray Train after a worker failure; resuming from the last "
                             "checkpoint\n")
            sys.stdout.flush()
        return fn(*args[:-1], args[-1] or restarted)

    wrapped.__name__ = wrapped.__qualname__ = getattr(fn, "__name__", "stage")
    return wrapped


def _with_threads(fn: Callable, threads: int) -> Callable:
    """Ray pins workers to one intra-op thread by default; give a worker the cores it reserved."""

    def wrapped(*args):
        import torch

        torch.set_num_threads(threads)
        return fn(*args)

    wrapped.__name__ = wrapped.__qualname__ = getattr(fn, "__name__", "stage")  # Ray labels logs with it
    return wrapped
