"""`rerank-rl serve EXPORT_DIR [--host 127.0.0.1] [--port 8000] [--ray]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rerank_rl.rl.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve an export over HTTP (/v1/rerank, /v1/classify, /health, /v1/models)")
    p.add_argument("export_dir", help="a reranker export (bundle.json) or a classifier export")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                   "the API has no authentication)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; default 8000)")
    p.add_argument("--max-batch", type=int, default=16, metavar="N",
                   help="requests gathered into one model call (1 turns batching off; default 16)")
    p.add_argument("--max-documents", type=int, default=1000, help="documents per rerank request (default 1000)")
    p.add_argument("--max-document-chars", type=int, default=20_000, help="characters per document or text")
    p.add_argument("--max-body-bytes", type=int, default=4 << 20, help="request body size (default 4 MiB)")
    p.add_argument("--scoring", choices=("expected", "greedy"), help="override the export's scoring")
    p.add_argument("--batch-size", type=int, help="prompts per forward pass (default: the export's setting)")
    p.add_argument("--ray", action="store_true", help="serve through Ray Serve replicas (scale-out)")
    p.add_argument("--replicas", type=int, default=1, help="with --ray: model replicas (default 1)")
    p.add_argument("--address", help="with --ray: the Ray cluster to join (default: start a local one)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from .requests import Limits

    export_dir = Path(args.export_dir)
    if not export_dir.is_dir():
        raise UserError(f"{export_dir}: no such export folder")
    for name in ("max_batch", "max_documents", "max_document_chars", "max_body_bytes", "replicas"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    limits = Limits(max_body_bytes=args.max_body_bytes, max_documents=args.max_documents,
                    max_document_chars=args.max_document_chars)
    overrides = {"scoring": args.scoring, "batch_size": args.batch_size}
    if args.host not in LOOPBACK:
        print(f"note: listening on {args.host}, beyond this machine; the API has no authentication", flush=True)
    if args.ray:
        from .ray_backend import serve_with_ray

        serve_with_ray(export_dir, args.host, args.port, limits, args.max_batch, args.replicas, args.address,
                       overrides)
        return 0
    return _serve_uvicorn(export_dir, args, limits, overrides)


def _serve_uvicorn(export_dir: Path, args, limits, overrides: dict) -> int:
    import socket

    import uvicorn

    from .app import Service, build_app
    from .engines import load_engine

    service = Service(load_engine(export_dir, **overrides), export_dir, limits, args.max_batch)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(2048)  # from here connections wait in the backlog, so the line below is already true
    except OSError as err:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({err.strerror})") from None
    port = sock.getsockname()[1]  # the real port when --port 0
    print(f"serving {export_dir} ({service.model['task']}, {service.model['paradigm']}) on "
          f"http://{args.host}:{port}", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(service), log_level="warning", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])
    return 0
