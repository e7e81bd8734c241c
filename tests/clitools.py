"""Running the real command line from tests. A plain module (not conftest) so any test file can import it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scattered_lists(n: int, queries: int, text) -> list[dict]:
    """Ranking lists whose candidate i has quality (7 * i + q) % n, written into its text by `text(quality)`: the
    best candidates lie anywhere in first-stage order, and a stand-in model that reads the quality ranks them."""
    return [{"qid": f"q{q}", "query": f"query {q}", "doc_ids": [f"d{i}" for i in range(n)],
             "doc_texts": [text((7 * i + q) % n) for i in range(n)], "first_stage_scores": [0.0] * n,
             "labels": [0] * n} for q in range(queries)]


def write_candidates(examples: list[dict], folder: Path) -> tuple[Path, Path]:
    """Evaluation lists as a rank_llm retrieve_results JSON and a qrels file, as a user would bring them."""
    cands = [{"query": ex["query"], "hits": [
        {"qid": ex["qid"], "docid": d, "content": t, "score": s, "rank": r}
        for r, (d, t, s) in enumerate(zip(ex["doc_ids"], ex["doc_texts"], ex["first_stage_scores"]), start=1)]}
        for ex in examples]
    (folder / "cands.json").write_text(json.dumps(cands))
    lines = [f"{ex['qid']} 0 {d} {g}" for ex in examples for d, g in zip(ex["doc_ids"], ex["labels"])]
    (folder / "qrels.txt").write_text("\n".join(lines) + "\n")
    return folder / "cands.json", folder / "qrels.txt"


def assert_export_reproduces(run_dir: Path, paradigm: str, folder: Path) -> dict:
    """Reload a run's export through `rerank-rl evaluate --json` on the run's own evaluation lists and check that it
    reproduces the run's metrics and answers; returns the evaluate payload."""
    from datasets import load_from_disk

    after = json.loads((run_dir / "metrics/after.json").read_text())
    cands, qrels = write_candidates([dict(r) for r in load_from_disk(str(run_dir / "data/eval"))], folder)
    reload = run_cli("evaluate", "--model", str(run_dir / "export"), "--paradigm", paradigm, "--candidates",
                     str(cands), "--qrels", str(qrels), "--json")
    assert reload.returncode == 0, reload.stderr[-2000:]
    payload = json.loads(reload.stdout)
    for metric in ("ndcg@10", "mrr@10", "queries"):
        assert abs(payload[metric] - after["reranked"][metric]) <= 1e-9, metric
    assert payload["answers"] == after["answers"]  # the same prompts got the same answers
    # only groupwise chooses how to read scores (expected or greedy); no other paradigm may claim a setting
    assert ("scoring" in payload) == (paradigm == "groupwise")
    return payload


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `rerank-rl ARGS` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "rerank_rl.rl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@contextlib.contextmanager
def serving(*args: str):
    """Run `rerank-rl serve ARGS --port 0` in a subprocess (one torch thread); yields (base URL, log file), and
    stops the server afterwards. The log holds its stderr, for tests that look for tracebacks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rerank_rl.rl.cli", "serve", *args, "--port", "0"],
                                stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO, env=env)
        try:
            line = ""
            while not line.startswith("serving "):
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the server exited with {proc.returncode}: {log.read()[-2000:]}")
            yield line.rsplit(" on ", 1)[1].strip(), log
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def http(url: str, body=None, method: str | None = None, data: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of one request; `body` is sent as JSON, `data` as raw bytes."""
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
