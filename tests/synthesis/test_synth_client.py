"""TeacherClient: disk cache (a re-run makes no calls), re-asks of unparseable replies, failure accounting."""

from __future__ import annotations

from rerank_rl.data_synthesis.cache import ReplyCache
from rerank_rl.data_synthesis.teachers import Reply, Request, TeacherClient


class Counting:
    identity = "counting"
    chunk_size = 3

    def __init__(self, script=None):
        self.calls = 0
        self.seen = []
        self.script = script or (lambda r: Reply(text=f"<answer>{r.messages[-1]['content']}</answer>"))

    def generate(self, requests):
        self.calls += len(requests)
        self.seen += list(requests)
        return [self.script(r) for r in requests]

    def close(self):
        pass


def _requests(n, **kw):
    return [Request([{"role": "user", "content": str(i)}], 8, **kw) for i in range(n)]


def test_rerun_is_served_from_the_cache(tmp_path):
    first = Counting()
    client = TeacherClient(first, ReplyCache(tmp_path / "c.sqlite"), progress=False)
    out = client.ask(_requests(7), "k")
    assert [o.status for o in out] == ["ok"] * 7 and first.calls == 7
    client.close()

    second = Counting()
    client = TeacherClient(second, ReplyCache(tmp_path / "c.sqlite"), progress=False)
    again = client.ask(_requests(7), "k")
    assert second.calls == 0 and [o.text for o in again] == [o.text for o in out]
    totals = client.totals()
    assert totals["calls"] == 0 and totals["cache_hits"] == 7 and totals["ok"] == 7


def test_cache_key_covers_identity_prompt_and_sampling(tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite")
    backend = Counting()
    client = TeacherClient(backend, cache, progress=False)
    client.ask(_requests(2), "k")
    client.ask(_requests(2, temperature=0.7), "k")  # other sampling parameters
    client.ask([Request(r.messages, 8, sample=1) for r in _requests(2)], "k")  # another sample
    assert backend.calls == 6
    other = Counting()
    other.identity = "another-model"
    TeacherClient(other, cache, progress=False).ask(_requests(2), "k")
    assert other.calls == 2


def test_invalid_replies_are_reasked_at_another_sample_and_counted(tmp_path):
    def script(r):
        # "2" is answered with garbage on the first ask only; "3" always
        bad = r.messages[-1]["content"] == "3" or (r.messages[-1]["content"] == "2" and r.sample == 0)
        return Reply(text="no idea" if bad else "<answer>fine</answer>")

    backend = Counting(script)
    client = TeacherClient(backend, ReplyCache(tmp_path / "c.sqlite"), invalid_retries=2, progress=False)
    check = lambda text: text if "<answer>" in text else None  # noqa: E731
    out = client.ask(_requests(4), "k", check)
    assert [o.status for o in out] == ["ok", "ok", "ok", "invalid"]
    reasks = [r for r in backend.seen if r.sample]
    assert {r.sample for r in reasks} == {1000, 2000} and all(r.temperature == 0.7 for r in reasks)
    stats = client.totals()
    assert stats["calls"] == 4 + 2 + 1 and stats["invalid"] == 1 and stats["reasked"] == 3
    # the re-run replays the same replies (garbage included) without a single call
    replay = Counting(script)
    client = TeacherClient(replay, ReplyCache(tmp_path / "c.sqlite"), invalid_retries=2, progress=False)
    assert [o.status for o in client.ask(_requests(4), "k", check)] == ["ok", "ok", "ok", "invalid"]
    assert replay.calls == 0


def test_failures_are_recorded_not_cached_and_validators_never_crash(tmp_path):
    def script(r):
        return Reply(error="HTTP 500 boom", calls=4) if r.messages[-1]["content"] == "1" else Reply(text="x")

    def explode(text):
        raise RuntimeError("parser bug")

    backend = Counting(script)
    client = TeacherClient(backend, ReplyCache(tmp_path / "c.sqlite"), invalid_retries=0, progress=False)
    out = client.ask(_requests(3), "k", [str.strip, str.strip, explode])
    assert [o.status for o in out] == ["ok", "failed", "invalid"]
    assert out[1].error == "HTTP 500 boom"
    totals = client.totals()
    assert totals["failed"] == 1 and totals["calls"] == 1 + 4 + 1
    assert totals["by_kind"]["k"]["errors"] == ["HTTP 500 boom"]
    retry = Counting(script)
    TeacherClient(retry, ReplyCache(tmp_path / "c.sqlite"), invalid_retries=0, progress=False).ask(_requests(3), "k")
    assert retry.calls == 1  # only the failed request is asked again
