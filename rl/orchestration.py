"""Where stages run. Stages are plain functions; this layer only decides on which Ray workers they execute.

- `ray.enabled: false`: everything runs in this process (debugging, tests).
- otherwise `ray.init()` starts a local cluster on this machine's cores, or joins `ray.address` on a cluster;
  training stages run inside Ray Train workers (TorchTrainer: gloo on CPU, NCCL on GPU, `ray.num_workers` of
  them), other stages as Ray tasks.
"""

from __future__ import annotations

import os
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
    def __init__(self, ray_section, run_dir: Path):
        self.section, self.run_dir = ray_section, Path(run_dir).resolve()
        self.started = False

    def __enter__(self):
        if self.section.enabled:
            import ray

            if not ray.is_initialized():
                env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
                runtime_env = {"env_vars": env, "worker_process_setup_hook": f"{__name__}.quiet_ray_workers"}
                ray.init(address=self.section.address or None, include_dashboard=False, log_to_driver=True,
                         runtime_env=runtime_env, configure_logging=False)
                self.started = True
        return self

    def __exit__(self, *exc):
        if self.started:
            import ray

            ray.shutdown()

    def task(self, fn: Callable, *args, num_cpus: float = 1):
        """Run `fn(*args)` as a Ray task (or inline) and return its result."""
        if not self.section.enabled:
            return fn(*args)
        import ray

        cpus = ray.cluster_resources().get("CPU", 1)
        # max_calls=1: the worker exits after the task, so a stage's model and torch's caches are freed before the
        # next stage starts instead of idling in Ray's worker pool.
        remote = ray.remote(num_cpus=min(num_cpus, cpus), max_retries=0, max_calls=1)(
            _with_threads(fn, int(max(1, cpus))))
        return ray.get(remote.remote(*args))

    def train(self, name: str, fn: Callable, *args) -> None:
        """Run training stage `fn(*args)` on `ray.num_workers` Ray Train workers (or inline). Outputs go to disk."""
        if not self.section.enabled:
            fn(*args)
            return
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        workers = self.section.num_workers
        cpus = ray.cluster_resources().get("CPU", 1)
        per_worker = max(1, int(cpus // workers)) if not self.section.use_gpu else 1
        loop = _with_threads(fn, per_worker)
        trainer = TorchTrainer(
            lambda _: loop(*args),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=self.section.use_gpu,
                                         resources_per_worker={"CPU": per_worker}),
            run_config=RunConfig(name=name, storage_path=str(self.run_dir / "ray")),
        )
        trainer.fit()


def quiet_ray_workers() -> None:
    """Run in every Ray worker of the job. Without the dashboard, Ray Train's placement-group cleaner cannot query
    actor states and would warn about it every second for the whole training stage."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def _with_threads(fn: Callable, threads: int) -> Callable:
    """Ray pins workers to one intra-op thread by default; give a worker the cores it reserved."""

    def wrapped(*args):
        import torch

        torch.set_num_threads(threads)
        return fn(*args)

    wrapped.__name__ = wrapped.__qualname__ = getattr(fn, "__name__", "stage")  # Ray labels logs with it
    return wrapped
