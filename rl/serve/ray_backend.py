"""`rerank-rl serve --ray`: the same Service in Ray Serve replicas, for scale-out over a cluster's machines.

Each replica loads the export once and batches its own requests; Ray's HTTP proxy spreads requests over the
replicas. Ray Serve is an optional extra (`pip install 'rerank-rl[ray-serve]'`): it adds FastAPI and a proxy
that a single-machine server does not need.
"""

from __future__ import annotations

from pathlib import Path

from rerank_rl.rl.errors import UserError

from .requests import Limits


def serve_with_ray(export_dir: Path, host: str, port: int, limits: Limits, max_batch: int, replicas: int,
                   address: str | None, overrides: dict) -> None:
    try:
        import ray
        from ray import serve
    except ImportError as err:
        raise UserError(f"--ray needs Ray Serve, which is not installed ({err.name or err} is missing): "
                        "pip install 'rerank-rl[ray-serve]', or serve without --ray") from None

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 1})
    class RerankRL:
        def __init__(self):
            from .app import Service
            from .engines import load_engine

            self.service = Service(load_engine(export_dir, **overrides), export_dir, limits, max_batch)

        async def __call__(self, request):  # Ray hands over a starlette Request, as uvicorn does
            return await self.service.dispatch(request)

    ray.init(address=address, include_dashboard=False, ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    print(f"serving {export_dir} with Ray Serve ({replicas} replica(s)) on http://{host}:{port}", flush=True)
    serve.run(RerankRL.bind(), name="rerank-rl", route_prefix="/", blocking=True)
