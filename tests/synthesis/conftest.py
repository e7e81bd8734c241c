"""A small OpenAI-compatible chat server on 127.0.0.1 for the endpoint teacher tests, and scripted responders.

The server speaks real HTTP (stdlib ThreadingHTTPServer); the client under test is the real `openai` client. A
responder gets the decoded request body and returns (status, payload): a dict is sent as JSON, bytes as they are.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def completion(text: str, model: str = "test-model") -> dict:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class ChatServer:
    def __init__(self, responder):
        self.responder = responder
        self.hits = Counter()  # request count per last user message
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                key = body["messages"][-1]["content"]
                with server.lock:
                    server.hits[key] += 1
                    seen = server.hits[key]
                try:
                    status, payload = server.responder(body, seen)
                except Exception as err:  # a broken responder is a 500, as a real server would send
                    status, payload = 500, {"error": {"message": str(err)}}
                self._send(status, payload)

            def _send(self, status, payload):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                kind = "application/json" if not isinstance(payload, bytes) else "text/plain"
                try:
                    self.send_response(status)
                    self.send_header("content-type", kind)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def chat_server(responder):
    with ChatServer(responder) as server:
        yield server


class ModelResponder:
    """Answers with the default model (greedy or sampled as asked), one request at a time."""

    def __init__(self):
        from rerank_rl.data_synthesis.teachers.local import LocalTeacher

        self.teacher = LocalTeacher(batch_size=4)
        self.lock = threading.Lock()

    def __call__(self, body, seen):
        from rerank_rl.data_synthesis.teachers.base import Request

        messages, prefill = body["messages"], ""
        if body.get("continue_final_message"):  # as vLLM's server: continue the final assistant message
            messages, prefill = messages[:-1], messages[-1]["content"]
        request = Request(messages, int(body.get("max_tokens") or 32), float(body.get("temperature") or 0.0),
                          float(body.get("top_p") or 1.0), int(body.get("seed") or 0), prefill)
        with self.lock:
            reply = self.teacher.generate([request])[0]
        if reply.text is None:
            return 500, {"error": {"message": reply.error}}
        return 200, completion(reply.text[len(prefill):], body.get("model", "default"))


@pytest.fixture(scope="session")
def model_responder():
    return ModelResponder()


def _overlap(query: str, passage: str) -> int:
    words = {w.strip(".,;:?!()").lower() for w in query.split() if len(w) > 3}
    return sum(w in passage.lower() for w in words)


def _numbered(user: str) -> list[str]:
    """Passages written as `[i] text` lines in a user message."""
    import re

    return [m.group(2) for m in re.finditer(r"^\[(\d+)\] (.*)$", user, flags=re.M)]


def _query_of(user: str) -> str:
    return user.split("\n", 1)[0].removeprefix("Query: ")


class ScriptedResponder:
    """A deterministic teacher: word overlap as relevance, answering every synthesis prompt in its format.

    `fail` maps a substring of the last user message to a behaviour: "error" (always HTTP 500), "flaky" (500 on the
    first two attempts), "bytes" (HTTP 200 with a body that is not JSON), "nonsense" (a chat completion whose text
    no parser accepts)."""

    def __init__(self, fail: dict[str, str] | None = None):
        self.fail = fail or {}

    def text(self, messages: list[dict]) -> str:
        system, user = messages[0]["content"], messages[-1]["content"]
        if "realistic search queries" in system:
            return "<answer>" + " ".join(user.removeprefix("Document: ").split()[:6]) + "</answer>"
        if user.startswith("Query:") and "Passage:" in user:
            query, passage = _query_of(user), user.split("Passage: ", 1)[1]
            return f"<answer>{min(10, 2 * _overlap(query, passage))}</answer>"
        passages, query = _numbered(user), _query_of(user)
        scores = [_overlap(query, p) for p in passages]
        if "Order the numbered passages" in system:
            order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
            return "<answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"
        answer = json.dumps({f"[{i + 1}]": min(10, 3 * s) for i, s in enumerate(scores)})
        reason = "<reason>Passages sharing the query's terms are the useful ones.</reason>\n"
        return (reason if "<reason>" in system else "") + f"<answer>{answer}</answer>"

    def __call__(self, body, seen):
        user = body["messages"][-1]["content"]
        for marker, how in self.fail.items():
            if marker in user:
                if how == "error" or (how == "flaky" and seen <= 2):
                    return 500, {"error": {"message": "scripted failure"}}
                if how == "bytes":
                    return 200, b"<html>definitely not json"
                if how == "nonsense":
                    return 200, completion("I'd rather talk about the weather.")
        return 200, completion(self.text(body["messages"]), body.get("model", "scripted"))


@pytest.fixture
def scripted():
    return ScriptedResponder


@pytest.fixture
def chat_server_cls():
    return ChatServer
