"""`rerank-rl serve` over HTTP on 127.0.0.1, against an export of the tiny model: it ranks as `evaluate` does, bad
requests get a 4xx with a message and the server keeps serving, and concurrent requests share model calls."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from clitools import http, serving

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.serve.batching import Batcher
from rerank_rl.rl.serve.requests import BadRequest, Limits, parse_rerank

BUNDLE = {"paradigm": "groupwise", "variant": "answer_only", "dtype": "float32",
          "inference": {"window": 10, "stride": 5, "repeats": 1, "fusion_weight": None, "max_doc_chars": 300,
                        "seed": 0, "batch_size": 8, "scoring": "expected", "decode_budget": None}}
LIMITS = ["--max-documents", "30", "--max-document-chars", "5000", "--max-body-bytes", "200000"]


def make_export(folder, model, **inference):
    (folder / "model").symlink_to(model, target_is_directory=True)
    bundle = {**BUNDLE, "inference": {**BUNDLE["inference"], **inference}}
    (folder / "bundle.json").write_text(json.dumps(bundle))
    return folder


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, tiny_lm_path):
    return make_export(tmp_path_factory.mktemp("export"), tiny_lm_path)


@pytest.fixture(scope="module")
def server(export_dir):
    with serving(str(export_dir), *LIMITS) as (url, log):
        yield url, log


def test_binds_loopback_and_describes_the_export(server):
    url, _ = server
    assert url.startswith("http://127.0.0.1:")
    assert http(url + "/health")[1]["status"] == "ok"
    status, models = http(url + "/v1/models")
    entry = models["data"][0]
    assert status == 200 and entry["paradigm"] == "groupwise" and entry["task"] == "rerank"
    assert entry["settings"] == BUNDLE["inference"]


def test_rerank_over_http_ranks_dl19_as_evaluate_does(server, export_dir, shared_data, tmp_path, capsys):
    from rerank_rl.data_synthesis.readers import read_qrels
    from rerank_rl.rl.cli import main
    from rerank_rl.rl.evaluate import load_candidates

    candidates = shared_data / "trec_dl" / "BM25" / "retrieve_results_dl19.json"
    qrels = shared_data / "trec_dl" / "qrels" / "qrels.dl19-passage.txt"
    assert main(["evaluate", "--model", str(export_dir), "--paradigm", "groupwise", "--candidates", str(candidates),
                 "--qrels", str(qrels), "--depth", "20", "--max-queries", "3", "--run-out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    expected: dict[str, list[tuple[str, float]]] = {}
    for line in (tmp_path / "run").read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        expected.setdefault(qid, []).append((doc, float(score)))
    examples = load_candidates(candidates, qrels=read_qrels(qrels), depth=20)[:3]
    # the model does reorder BM25's lists, so agreeing with evaluate says something
    assert any([d for d, _ in expected[ex["qid"]]] != ex["doc_ids"] for ex in examples)
    answers = {}

    def ask(ex):  # all three at once: the server may batch them into one model call
        # documents as {"text": ...} objects for one query: both shapes of the common API
        documents = ([{"text": t} for t in ex["doc_texts"]] if ex["qid"] == examples[0]["qid"] else ex["doc_texts"])
        answers[ex["qid"]] = http(server[0] + "/v1/rerank", {"query": ex["query"], "documents": documents})

    threads = [threading.Thread(target=ask, args=(ex,)) for ex in examples]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ex in examples:
        status, answer = answers[ex["qid"]]
        assert status == 200, answer
        got = [(ex["doc_ids"][r["index"]], r["relevance_score"]) for r in answer["results"]]
        assert [d for d, _ in got] == [d for d, _ in expected[ex["qid"]]]  # the same ranking
        assert max(abs(a - b) for (_, a), (_, b) in zip(got, expected[ex["qid"]])) < 1e-4  # run files round
        assert answer["meta"] == {**answer["meta"], "documents": 20, "fusion": False}


def test_top_n_and_return_documents(server):
    documents = ["red apples", "green pears", "a blue car", "yellow bananas"]
    status, full = http(server[0] + "/v1/rerank", {"query": "fruit", "documents": documents})
    assert status == 200
    scores = [r["relevance_score"] for r in full["results"]]
    assert scores == sorted(scores, reverse=True) and sorted(r["index"] for r in full["results"]) == [0, 1, 2, 3]
    assert "document" not in full["results"][0]
    status, top = http(server[0] + "/v1/rerank", {"query": "fruit", "documents": documents, "top_n": 2,
                                                  "return_documents": True, "model": "any"})
    assert status == 200 and [r["index"] for r in top["results"]] == [r["index"] for r in full["results"][:2]]
    assert all(r["document"]["text"] == documents[r["index"]] for r in top["results"])


BAD = [
    (b'{"query": "x", "documents": ["a"', 400, "not valid JSON"),
    (b"", 400, "body is empty"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b'["a", "b"]', 422, "must be a JSON object"),
    (b'{"documents": ["a"]}', 422, "missing field 'query'"),
    (b'{"query": "x"}', 422, "missing field 'documents'"),
    (b'{"query": "x", "documents": []}', 422, "documents is empty"),
    (b'{"query": " ", "documents": ["a"]}', 422, "query is empty"),
    (b'{"query": "x", "documents": ["a", 3]}', 422, "documents[1] must be a string"),
    (b'{"query": "x", "documents": [{"txt": "a"}]}', 422, "without a 'text' field"),
    (b'{"query": "x", "documents": ["a"], "top_n": 0}', 422, "top_n must be a positive integer"),
    (b'{"query": "x", "documents": ["a"], "top_k": 2}', 422, "unknown field 'top_k'"),
    (b'{"query": "x", "documents": ["a"], "first_stage_scores": [1, 2]}', 422, "first_stage_scores must be 1"),
    (json.dumps({"query": "x", "documents": ["a"] * 31}).encode(), 413, "documents has 31 entries; the limit is 30"),
    (json.dumps({"query": "x", "documents": ["a" * 5001]}).encode(), 413, "documents[0] has 5001 characters"),
    (json.dumps({"query": "x", "documents": ["a" * 4000] * 29, "pad": "b" * 90000}).encode(), 413,
     "the limit is 200000"),
]


@pytest.mark.parametrize("data,status,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_requests_get_a_4xx_with_a_message_and_the_server_keeps_serving(server, data, status, message):
    url, log = server
    got, answer = http(url + "/v1/rerank", data=data, headers={"Content-Type": "application/json"})
    assert (got, answer["error"]["status"]) == (status, status) and message in answer["error"]["message"], answer
    assert http(url + "/v1/rerank", {"query": "q", "documents": ["a", "b"]})[0] == 200
    log.seek(0)
    assert "Traceback" not in log.read()


def test_wrong_routes_and_methods(server):
    url, _ = server
    assert http(url + "/v1/nothing")[0] == 404
    status, answer = http(url + "/v1/rerank")  # GET
    assert status == 405 and "takes POST" in answer["error"]["message"]
    status, answer = http(url + "/v1/classify", {"texts": ["a"], "labels": ["x"]})
    assert status == 400 and "reranker" in answer["error"]["message"]


def test_an_unbounded_chunked_body_is_cut_at_the_limit(server):
    """No Content-Length (chunked upload): the server counts while reading and stops at the limit."""
    import http.client

    url = server[0].removeprefix("http://")
    conn = http.client.HTTPConnection(url, timeout=60)
    chunks = (b'{"query": "x", "documents": ["' + b"a" * 50_000 + b'"]}' for _ in range(6))
    conn.request("POST", "/v1/rerank", body=chunks, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413 and "the limit is 200000" in json.loads(response.read())["error"]["message"]


def test_fusion_applies_the_bundles_weight_per_request(tmp_path, tiny_lm_path):
    """A request with first_stage_scores is fused with the bundle's weight exactly as evaluate fuses."""
    from rerank_rl.rl.serve.engines import load_engine
    from rerank_rl.rl.serving import load_reranker

    export = make_export(tmp_path, tiny_lm_path, fusion_weight=0.6, window=4, stride=2)
    engine = load_engine(export)
    docs, first = [f"passage {i} on topic {i % 3}" for i in range(6)], [9.0, 7.5, 7.0, 3.0, 2.0, 1.0]
    plain = {"query": "topic 1", "documents": docs, "first_stage_scores": None}
    fused, unfused = engine.rank([{**plain, "first_stage_scores": first}, plain])
    example = {"qid": "q", "query": "topic 1", "doc_ids": list("abcdef"), "doc_texts": docs,
               "first_stage_scores": first, "labels": [0] * 6}
    reranker = load_reranker(export)
    assert fused == pytest.approx([s for _, s in reranker.rerank_run([example])["q"]], abs=1e-9)
    assert unfused == pytest.approx([s for _, s in reranker.rerank_run([example], fusion_weight="none")["q"]], abs=1e-9)
    assert fused != pytest.approx(unfused)


def test_batcher_gathers_waiting_requests_into_one_call():
    calls = []

    def run_batch(items):
        calls.append(list(items))
        return [item * 10 for item in items]

    async def scenario(batcher):
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    assert asyncio.run(scenario(Batcher(run_batch, max_requests=16))) == [0, 10, 20, 30, 40]
    assert calls == [[0, 1, 2, 3, 4]]  # queued while the loop was busy: one call
    calls.clear()
    assert asyncio.run(scenario(Batcher(run_batch, max_requests=2))) == [0, 10, 20, 30, 40]
    assert calls == [[0, 1], [2, 3], [4]]


def test_batcher_answers_a_failed_call_and_keeps_going():
    def run_batch(items):
        if "bad" in items:
            raise RuntimeError("model fell over")
        return items

    async def scenario():
        batcher = Batcher(run_batch, max_requests=1)
        first = await asyncio.gather(batcher.submit("bad"), return_exceptions=True)
        return first, await batcher.submit("good")

    (failure,), after = asyncio.run(scenario())
    assert isinstance(failure, RuntimeError) and after == "good"


def test_tei_spelling_is_accepted():
    parsed = parse_rerank({"query": "q", "texts": ["a", "b"], "return_text": True}, Limits())
    assert parsed["documents"] == ["a", "b"] and parsed["return_documents"] is True
    with pytest.raises(BadRequest, match="return_documents must be true or false"):
        parse_rerank({"query": "q", "documents": ["a"], "return_documents": "yes"}, Limits())


def test_default_host_is_loopback_and_ray_without_serve_is_a_clear_error(export_dir, monkeypatch, capsys):
    import sys

    import ray

    from rerank_rl.rl.cli import build_parser, main

    assert build_parser().parse_args(["serve", "x"]).host == "127.0.0.1"
    monkeypatch.delattr(ray, "serve", raising=False)
    monkeypatch.setitem(sys.modules, "ray.serve", None)  # as if ray[serve] were not installed
    assert main(["serve", str(export_dir), "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ray needs Ray Serve" in err and "rerank-rl[ray-serve]" in err


def test_serve_refuses_a_folder_that_is_not_an_export(tmp_path, capsys):
    from rerank_rl.rl.cli import main

    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "no such export folder" in capsys.readouterr().err
    with pytest.raises(UserError, match="not an export folder"):
        from rerank_rl.rl.serve.engines import load_engine

        load_engine(tmp_path)
