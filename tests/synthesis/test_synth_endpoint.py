"""The OpenAI-compatible endpoint teacher, over real HTTP to a server on 127.0.0.1 (the real `openai` client)."""

from __future__ import annotations

import time

import pytest

from rerank_rl.data_synthesis.cache import ReplyCache
from rerank_rl.data_synthesis.teachers import Request, TeacherClient
from rerank_rl.data_synthesis.teachers.endpoint import EndpointTeacher


def _ask(content: str, tokens: int = 16) -> Request:
    return Request([{"role": "user", "content": content}], tokens)


@pytest.mark.slow
def test_endpoint_answers_with_the_default_model(model_responder, chat_server_cls):
    requests = [_ask("What is the capital of France?"), _ask("Name a colour."),
                Request([{"role": "user", "content": "Grade this: 'Paris is in France.'"}], 6, prefill="<answer>")]
    with chat_server_cls(model_responder) as server:
        teacher = EndpointTeacher(server.base_url, "smollm2-135m-instruct", concurrency=2, timeout_s=120,
                                  prefill=True)
        replies = teacher.generate(requests)
        teacher.close()
    direct = model_responder.teacher.generate(requests)
    assert [r.text for r in replies] == [d.text for d in direct]  # greedy: the server's text is the model's
    assert replies[2].text.startswith("<answer>")  # continued from the prefilled assistant message
    assert all(r.text and r.calls == 1 for r in replies)
    assert server.total == 3


def test_retries_backoff_and_failures_over_http(scripted, chat_server_cls, tmp_path):
    responder = scripted(fail={"always-500": "error", "flaky": "flaky", "html": "bytes", "chatty": "nonsense"})
    contents = ["Query: a\n\nPassage: fine a", "Query: b\n\nPassage: flaky b", "Query: c\n\nPassage: always-500",
                "Query: d\n\nPassage: html page", "Query: e\n\nPassage: chatty e", "Query: f\n\nPassage: f"]
    with chat_server_cls(responder) as server:
        backend = EndpointTeacher(server.base_url, "scripted", concurrency=4, timeout_s=10, max_retries=3,
                                  backoff_s=0.01, backoff_max_s=0.05)
        client = TeacherClient(backend, ReplyCache(tmp_path / "c.sqlite"), invalid_retries=1, progress=False)
        check = lambda text: text if "<answer>" in text else None  # noqa: E731
        out = client.ask([_ask(c) for c in contents], "pointwise", check)
        hits = dict(server.hits)
        client.close()
    assert [o.status for o in out] == ["ok", "ok", "failed", "failed", "invalid", "ok"]
    assert out[0].text == "<answer>0</answer>" and out[5].text == "<answer>0</answer>"
    assert hits[contents[1]] == 3  # two 500s, then the answer
    assert hits[contents[2]] == 4 and hits[contents[3]] == 4  # 1 + max_retries, then recorded as failed
    assert hits[contents[4]] == 2  # a chatty reply is re-asked once, then counted as unparseable
    stats = client.totals()
    assert stats["failed"] == 2 and stats["invalid"] == 1 and stats["ok"] == 3
    assert stats["calls"] == sum(hits.values()) == 1 + 3 + 4 + 4 + 2 + 1
    assert any("500" in e or "Internal" in e for e in stats["by_kind"]["pointwise"]["errors"])


def test_client_errors_fail_fast_and_timeouts_are_retried(chat_server_cls, scripted):
    answer = scripted()

    def responder(body, seen):
        user = body["messages"][-1]["content"]
        if user == "bad request":
            return 400, {"error": {"message": "context length exceeded"}}
        if user == "slow once" and seen == 1:
            time.sleep(1.0)
        return answer(body, seen)

    with chat_server_cls(responder) as server:
        teacher = EndpointTeacher(server.base_url, "m", concurrency=2, timeout_s=0.4, max_retries=2,
                                  backoff_s=0.01)
        bad, slow = teacher.generate([_ask("bad request"), _ask("slow once")])
        teacher.close()
    assert bad.text is None and bad.calls == 1 and "400" in bad.error  # the request is wrong: no retry
    assert slow.text is not None and slow.calls == 2  # timed out once, then answered


def test_requests_go_out_concurrently(chat_server_cls):
    def slow(body, seen):
        time.sleep(0.3)
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                  "finish_reason": "stop"}], "id": "x", "object": "chat.completion",
                     "created": 0, "model": "m"}

    with chat_server_cls(slow) as server:
        teacher = EndpointTeacher(server.base_url, "m", concurrency=8, timeout_s=10)
        start = time.time()
        replies = teacher.generate([_ask(str(i)) for i in range(8)])
        elapsed = time.time() - start
        teacher.close()
    assert all(r.text == "ok" for r in replies)
    assert elapsed < 1.5  # 8 x 0.3 s in sequence would take 2.4 s
