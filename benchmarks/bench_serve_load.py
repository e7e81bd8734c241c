"""Load test of `rerank-rl serve`: concurrent clients on loopback against an export, in a second process.

It starts the server as a subprocess, then runs a bounded loop of requests (DL19 BM25 queries with their top
passages) at each concurrency level and prints p50/p95 latency, requests/s and documents/s. The batching gain is
measured side by side: the same load against a second server started with `--max-batch 1` (one request per model
call), in alternating rounds.

    python benchmarks/bench_serve_load.py --model RUN/export [--levels 1,4,16] [--requests 16] [--docs 10]
        [--threads 1] [--gain-clients 16] [--gain-rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

DATA = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trec_dl" / "BM25"
        / "retrieve_results_dl19.json")


def payloads(docs: int) -> list[dict]:
    rows = json.loads(DATA.read_text())
    return [{"query": row["query"]["text"] if isinstance(row["query"], dict) else row["query"],
             "documents": [hit["content"] for hit in row["hits"][:docs]]} for row in rows]


def start_server(model: str, max_batch: int, threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rerank_rl.rl.cli", "serve", model, "--port", "0",
                             "--max-batch", str(max_batch)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    for line in proc.stdout:
        if line.startswith("serving "):
            return proc, line.rsplit(" on ", 1)[1].strip()
    raise SystemExit(f"the server exited with code {proc.wait()} before it listened")


def post(url: str, body: dict) -> float:
    started = time.perf_counter()
    request = urllib.request.Request(url + "/v1/rerank", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        results = json.loads(response.read())["results"]
    assert len(results) == len(body["documents"])
    return time.perf_counter() - started


def run_level(url: str, bodies: list[dict], clients: int, total: int) -> dict:
    """`clients` threads send `total` requests in all, each the next one as soon as its last was answered."""
    latencies: list[float] = []
    counter = iter(range(total))
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            latency = post(url, bodies[i % len(bodies)])
            with lock:
                latencies.append(latency)

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=20, method="inclusive")
    docs = sum(len(bodies[i % len(bodies)]["documents"]) for i in range(total))
    return {"clients": clients, "requests": total, "p50_s": statistics.median(latencies), "p95_s": cuts[18],
            "req_per_s": total / wall, "docs_per_s": docs / wall, "wall_s": wall}


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
        return json.loads(response.read())


def measure(url: str, max_batch: int, clients: int, args, bodies) -> dict:
    before = health(url)
    row = run_level(url, bodies, clients, max(args.requests, clients))
    after = health(url)
    calls = after["model_calls"] - before["model_calls"]
    row["requests_per_call"] = (after["requests_served"] - before["requests_served"]) / max(calls, 1)
    row["max_batch"] = max_batch
    print(f"max-batch {max_batch:>2} clients {clients:>2}: p50 {row['p50_s']:.2f} s  p95 {row['p95_s']:.2f} s"
          f"  {row['req_per_s']:.3f} req/s  {row['docs_per_s']:.2f} docs/s  "
          f"{row['requests_per_call']:.1f} requests per model call", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an export folder (from `rerank-rl export`)")
    parser.add_argument("--levels", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--gain-clients", type=int, default=16, help="clients for the batched/unbatched comparison")
    parser.add_argument("--gain-rounds", type=int, default=2, help="alternating batched/unbatched rounds")
    parser.add_argument("--requests", type=int, default=16, help="requests per level (at least one per client)")
    parser.add_argument("--docs", type=int, default=10, help="documents per request (DL19 BM25 top-N)")
    parser.add_argument("--threads", type=int, default=1, help="each server's torch threads")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    bodies = payloads(args.docs)
    # Both servers run from the start and are loaded in turn: on a shared machine, alternating rounds keep the
    # comparison fair when the background load changes.
    servers = {batch: start_server(args.model, batch, args.threads) for batch in (16, 1)}
    try:
        for _, url in servers.values():
            post(url, bodies[0])  # warm-up: first-call costs (the slot scorer's set-up) are not load
        rows = [measure(servers[16][1], 16, int(c), args, bodies) for c in args.levels.split(",")]
        gains = []
        for _ in range(args.gain_rounds):
            pair = [measure(servers[b][1], b, args.gain_clients, args, bodies) for b in (16, 1)]
            rows += pair
            gains.append(pair[0]["req_per_s"] / pair[1]["req_per_s"])
        print(f"batching gain at {args.gain_clients} clients (batched / one request per call, per round): "
              + ", ".join(f"{g:.2f}x" for g in gains))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
