"""The HTTP routes. `Service` holds one engine and answers starlette requests; `build_app` mounts it as an ASGI
app for uvicorn, and the Ray Serve deployment (ray_backend.py) calls the same handlers.

    GET  /health       {"status": "ok", "model_calls": ..., "requests_served": ...}
    GET  /v1/models    the export: paradigm, model, settings
    POST /v1/rerank    (also /rerank, /v2/rerank) query + documents -> results sorted by relevance_score
    POST /v1/classify  texts + labels -> every label's score per text (classifier exports)

Errors are JSON `{"error": {"message": ..., "status": ...}}`; a model failure is a 500 whose message is one line.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from .batching import Batcher
from .engines import describe
from .requests import BadRequest, Limits, parse_classify, parse_json, parse_rerank

log = logging.getLogger("rerank_rl.serve")
RERANK_PATHS = ("/v1/rerank", "/rerank", "/v2/rerank")  # the paths Cohere, Jina and vLLM clients call


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "status": status}}, status_code=status)


class Service:
    def __init__(self, engine, export_dir: Path, limits: Limits = Limits(), max_batch: int = 16):
        self.engine, self.limits = engine, limits
        self.model = describe(Path(export_dir), engine)
        work = engine.rank if engine.task == "rerank" else engine.classify
        self.batcher = Batcher(work, max_requests=max_batch)

    def routes(self) -> dict[tuple[str, str], object]:
        table = {("GET", "/health"): self.health, ("GET", "/v1/models"): self.models,
                 ("POST", "/v1/classify"): self.classify}
        table.update({("POST", path): self.rerank for path in RERANK_PATHS})
        return table

    async def dispatch(self, request: Request):
        """Answer any request: the route's handler, a 404/405, or a JSON error; never a traceback."""
        routes = self.routes()
        handler = routes.get((request.method, request.url.path))
        if handler is None:
            allowed = [method for method, path in routes if path == request.url.path]
            if allowed:
                return error(405, f"{request.url.path} takes {', '.join(allowed)}, not {request.method}")
            return error(404, f"no route {request.url.path} (routes: {', '.join(sorted({p for _, p in routes}))})")
        try:
            return await handler(request)
        except BadRequest as err:
            return error(err.status, err.message)
        except Exception as err:  # noqa: BLE001 - logged with its traceback; the client gets one line
            log.exception("request failed")
            return error(500, f"internal error: {type(err).__name__}: {' '.join(str(err).split())[:300]}")

    async def body(self, request: Request) -> dict:
        """The JSON body, read no further than the size limit (a body without Content-Length is counted too)."""
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise BadRequest(413, f"the body has {declared} bytes; the limit is {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"the body has over {limit} bytes; the limit is {limit}")
            chunks.append(chunk)
        if not size:
            raise BadRequest(400, "the body is empty; send a JSON object")
        return parse_json(b"".join(chunks))

    async def health(self, request: Request):
        # model calls and the requests they served: their ratio is the batching achieved under load
        return JSONResponse({"status": "ok", "task": self.engine.task, "model_calls": self.batcher.calls,
                             "requests_served": self.batcher.served})

    async def models(self, request: Request):
        return JSONResponse({"object": "list", "data": [self.model]})

    async def rerank(self, request: Request):
        if self.engine.task != "rerank":
            raise BadRequest(400, "this export is a classifier: POST /v1/classify with texts and labels")
        parsed = parse_rerank(await self.body(request), self.limits)
        started = time.perf_counter()
        scores = await self.batcher.submit(parsed)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[: parsed["top_n"]]
        results = []
        for i in order:
            result = {"index": i, "relevance_score": scores[i]}
            if parsed["return_documents"]:
                result["document"] = {"text": parsed["documents"][i]}
            results.append(result)
        return JSONResponse({"id": uuid.uuid4().hex, "model": self.model["id"], "results": results,
                             "meta": {"documents": len(scores), "fusion": self.engine.fused(parsed),
                                      "seconds": round(time.perf_counter() - started, 4)}})

    async def classify(self, request: Request):
        if self.engine.task != "classify":
            raise BadRequest(400, "this export is a reranker: POST /v1/rerank with a query and documents")
        parsed = parse_classify(await self.body(request), self.limits)
        rows = await self.batcher.submit(parsed)
        return JSONResponse({"id": uuid.uuid4().hex, "model": self.model["id"],
                             "results": [{"index": i, **row} for i, row in enumerate(rows)]})


def build_app(service: Service):
    """An ASGI app that hands every HTTP request to `service.dispatch`."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":  # nothing to start or stop; acknowledge so uvicorn does not warn
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        response = await service.dispatch(Request(scope, receive))
        await response(scope, receive, send)

    return app
