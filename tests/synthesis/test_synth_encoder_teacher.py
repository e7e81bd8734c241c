"""The encoder teacher (`labels.teacher: encoder`): fusion math, qrels precedence, the 0-10 spread, clear errors,
and the synthesis stage writing `teacher_scores` for given candidate lists, retrieved pools and synthetic queries
(the real MiniLM on a few tiny pools; one test on TREC DL21/DL22 from ../shared/data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import load_from_disk

from rerank_rl.data_synthesis.config import (
    EncoderLabelsConfig,
    LabelsConfig,
    PoolsConfig,
    QueriesConfig,
    SourcesConfig,
    SynthesisConfig,
    TeacherConfig,
    TracesConfig,
)
from rerank_rl.data_synthesis.encoder_labels import (
    EncoderTeacher,
    fuse_scores,
    label_pools_with_encoder,
    rank_grades,
    spread_scores,
    zscores,
)
from rerank_rl.data_synthesis.stage import synthesize
from rerank_rl.rl.errors import UserError


class FixedCosines:
    """Stands in for EncoderTeacher: cosines given per query."""

    identity = "encoder:fixed@0.7"

    def __init__(self, by_qid: dict[str, list[float]]):
        self.by_qid = by_qid

    def cosines(self, examples):
        return [np.asarray(self.by_qid[ex["qid"]]) for ex in examples]


def _pool(qid: str, n: int, labels=None, first_stage=None) -> dict:
    ids = [f"{qid}-d{i}" for i in range(n)]
    return {"qid": qid, "query": f"query {qid}", "doc_ids": ids, "doc_texts": [f"text {d}" for d in ids],
            "first_stage_scores": first_stage or [float(n - i) for i in range(n)], "labels": labels or [0] * n}


def test_zscores_and_fusion_weights():
    np.testing.assert_allclose(zscores([1.0, 2.0, 3.0]), [-1.224744871, 0.0, 1.224744871])
    assert zscores([5.0, 5.0]).tolist() == [0.0, 0.0]  # no spread: no opinion
    enc, first = [0.9, 0.1, 0.5], [10.0, 30.0, 20.0]
    fused = fuse_scores(enc, first, 0.7)
    np.testing.assert_allclose(fused, 0.7 * zscores(enc) + 0.3 * zscores(first))
    assert np.argsort(-fuse_scores(enc, first, 1.0)).tolist() == [0, 2, 1]  # the encoder alone
    assert np.argsort(-fuse_scores(enc, first, 0.0)).tolist() == [1, 2, 0]  # the first stage alone
    # z-scores make the scale of either score irrelevant
    np.testing.assert_allclose(fuse_scores(enc, [1000 * f + 7 for f in first], 0.7), fused)
    with pytest.raises(ValueError, match="3 encoder scores but 2"):
        fuse_scores(enc, first[:2], 0.7)


def test_rank_grades_follow_the_cuts():
    assert rank_grades([0.1, 0.9, 0.5, 0.3, 0.2, 0.0], [2, 5, 15]) == [2, 3, 3, 2, 2, 1]
    assert rank_grades([1.0] * 4, [2]) == [0, 0, 0, 0]  # four-way tie at rank 2.5: outside the cut


def test_teacher_scores_spread_over_0_to_10_and_agree_with_labels():
    n = 100
    fused = np.linspace(1, -1, n)  # document i is the i-th best
    labels = rank_grades(fused, [2, 5, 15])
    scores = spread_scores(labels, fused, top=3)
    assert scores[:6] == [10.0, 8.75, 7.5, 6.6667, 5.8333, 5.0]
    assert max(scores) == 10.0 and 0 < min(scores) < 0.05 and scores == sorted(scores, reverse=True)
    assert all(10 * g / 4 < s <= 10 * (g + 1) / 4 for g, s in zip(labels, scores))  # grade g owns its band
    # a judged grade outranks a better fused score: scores follow labels first, fused order inside a grade
    mixed = spread_scores([0, 3, 1, 3], [0.9, -0.5, 0.8, 0.1], top=3)
    assert mixed == [2.5, 8.75, 5.0, 10.0]
    # binary qrels kept as gold (target gold, top 1): two bands
    assert spread_scores([1, 0, 0], [0.0, 1.0, 0.5], top=1) == [10.0, 5.0, 2.5]


def test_judged_grades_win_and_unjudged_get_teacher_grades():
    cfg = LabelsConfig(teacher="encoder", rank_cuts=[2, 5, 15])
    pools = [_pool("a", 6, labels=[0, 0, 2, 0, 0, 0]), _pool("b", 4)]
    qrels = {"a": {"a-d0": 0, "a-d2": 2}}  # the encoder prefers a-d0 (judged 0), a-d2 is judged relevant
    teacher = FixedCosines({"a": [0.9, 0.8, 0.1, 0.7, 0.2, 0.3], "b": [0.1, 0.4, 0.3, 0.2]})
    stats = label_pools_with_encoder(pools, qrels, cfg, teacher)
    a, b = pools
    assert a["teacher_labels"][0] == 3 and a["labels"][0] == 0  # judged 0 stays 0
    assert a["labels"][2] == 3  # judged 2 of 2 rescaled to the top grade 3
    assert a["labels"][1] == a["teacher_labels"][1] == 3 and a["labels"][3] == a["teacher_labels"][3]
    assert a["gold_labels"] == [0, 0, 2, 0, 0, 0]
    assert a["teacher_scores"][2] > a["teacher_scores"][0]  # the score follows the final label
    assert b["labels"] == b["teacher_labels"] and max(b["labels"]) == 3  # no qrels: teacher grades only
    assert max(b["teacher_scores"]) == 10.0
    assert len(a["encoder_scores"]) == len(a["fused_scores"]) == len(a["teacher_scores"]) == 6
    assert stats["pools_labeled"] == 2 and stats["docs_judged"] == 2 and stats["target"] == "merge"

    gold = [_pool("a", 6, labels=[0, 0, 2, 0, 0, 0])]
    label_pools_with_encoder(gold, qrels, LabelsConfig(teacher="encoder", target="gold"), teacher)
    assert gold[0]["labels"] == [0, 0, 2, 0, 0, 0] and max(gold[0]["teacher_scores"]) == 10.0
    only = [_pool("a", 6, labels=[0, 0, 2, 0, 0, 0])]
    label_pools_with_encoder(only, qrels, LabelsConfig(teacher="encoder", target="teacher"), teacher)
    assert only[0]["labels"] == only[0]["teacher_labels"]


def test_empty_pool_and_bad_encoder_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="pool of query 'x' has no documents"):
        label_pools_with_encoder([_pool("x", 0)], {}, LabelsConfig(teacher="encoder"), FixedCosines({"x": []}))
    with pytest.raises(UserError, match=r"^labels\.encoder\.model: model path .*/no-such-encoder' does not exist"):
        EncoderTeacher(EncoderLabelsConfig(model=str(tmp_path / "no-such-encoder")))
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "config.json").write_text("{}")
    teacher = EncoderTeacher(EncoderLabelsConfig(model=str(tmp_path / "not-a-model")))
    with pytest.raises(UserError, match=r"^labels\.encoder\.model: .*does not load as a sentence-transformers"):
        teacher.embed(["some text"])


@pytest.mark.parametrize("override, message", [
    ("labels.encoder.weight=1.5", "labels.encoder.weight must lie in [0, 1]"),
    ("labels.encoder.wieght=0.5", "unknown key 'labels.encoder.wieght'"),
    ("labels.teacher=bert", "key 'labels.teacher' must be one of ['llm', 'encoder']"),
    ("labels.encoder.model=", "labels.encoder.model must name an encoder"),
    ("extra_sources=[{kind: rank_llm, path: ''}]", "extra_sources[0].sources: kind 'rank_llm' needs 'path'"),
    ("extra_sources=[{kind: rank_llm, path: x.json, depth: 3}]", "unknown key 'extra_sources[0].depth'"),
])
def test_bad_encoder_config_is_one_line(override, message):
    from rerank_rl.rl.config import load_recipe

    with pytest.raises(UserError) as err:
        load_recipe("configs/synthesis_dl_teacher.yaml", [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_example_config_labels_dl21_dl22_scifact_and_never_dl19():
    from rerank_rl.rl.config import load_recipe

    cfg = load_recipe("configs/synthesis_dl_teacher.yaml")
    paths = [src.path for src in (cfg.sources, *cfg.extra_sources)]
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["retrieve_results_dl21.json", "retrieve_results_dl22.json",
                                                     "beir_scifact"]
    assert not any("dl19" in p or "dl19" in src.qrels for p, src in zip(paths, (cfg.sources, *cfg.extra_sources)))
    assert cfg.labels.teacher == "encoder" and cfg.labels.encoder.weight == 0.7 and cfg.labels.target == "merge"


def _write_rank_llm(path, queries: dict[str, tuple[str, list[str]]]) -> str:
    """A rank_llm retrieve_results JSON: {qid: (query, passages best first)}."""
    data = [{"query": q, "hits": [{"qid": qid, "docid": f"{qid}-p{i}", "content": text, "score": 20.0 - i,
                                   "rank": i + 1} for i, text in enumerate(passages)]}
            for qid, (q, passages) in queries.items()]
    path.write_text(json.dumps(data))
    return str(path)


PASSAGES = {
    "101": ("how do volcanoes erupt", [
        "Stock markets rose on Tuesday after strong earnings reports.", "Volcanoes erupt when magma rises and "
        "pressure from dissolved gases forces it through the crust.", "A recipe for lemon cake with icing.",
        "Lava flows and ash clouds follow an explosive volcanic eruption.", "The football season starts in August."]),
    "102": ("what do honeybees eat", [
        "Honeybees feed on nectar and pollen collected from flowers.", "Train timetables change in winter.",
        "Worker bees store honey made from nectar to feed the colony.", "Glaciers retreat as the climate warms.",
        "Bees need protein from pollen to raise their larvae."]),
}


def _stage_config(tmp_path, sources: list[SourcesConfig], **labels) -> SynthesisConfig:
    return SynthesisConfig(
        sources=sources[0], extra_sources=sources[1:],
        pools=PoolsConfig(retriever="bm25", top_k=5, sample=0),
        teacher=TeacherConfig(cache_dir=str(tmp_path / "cache")),
        labels=LabelsConfig(teacher="encoder", rank_cuts=[1, 2], **labels),
        traces=TracesConfig(enabled=False), queries=QueriesConfig(enabled=False))


def test_stage_writes_teacher_scores_for_given_lists_and_reruns_from_the_cache(tmp_path):
    judged = _write_rank_llm(tmp_path / "judged.json", {"101": PASSAGES["101"]})
    (tmp_path / "qrels.txt").write_text("101 0 101-p0 0\n101 0 101-p3 2\n")
    unjudged = _write_rank_llm(tmp_path / "unjudged.json", {"102": PASSAGES["102"]})
    sources = [SourcesConfig(kind="rank_llm", path=judged, qrels=str(tmp_path / "qrels.txt")),
               SourcesConfig(kind="rank_llm", path=unjudged, judged_only=False)]
    first = synthesize(_stage_config(tmp_path, sources), tmp_path / "run1")
    pools = load_from_disk(str(tmp_path / "run1" / "pools"))
    by_qid = {row["qid"]: row for row in pools}
    volcano, bees = by_qid["101"], by_qid["102"]
    # judged: 101-p3 keeps grade 2 (DL-scale qrels, top 2 with these cuts -> rescaled 2*2/2), p0 stays 0
    assert volcano["labels"][3] == 2 and volcano["labels"][0] == 0
    assert volcano["labels"][1] == 2 and volcano["teacher_labels"][1] == 2  # unjudged: the encoder's top passage
    # unjudged pool: teacher grades only; the off-topic passages score lowest
    assert bees["labels"] == bees["teacher_labels"] and set(bees["labels"]) == {0, 1, 2}
    assert max(bees["teacher_scores"]) == 10.0
    assert set(np.argsort(bees["teacher_scores"])[:2].tolist()) == {1, 3}  # trains and glaciers
    assert volcano["source"] == "rank_llm:judged.json" and volcano["teacher"] == "encoder:minilm@0.7"
    assert volcano["prompt_version"] == "" and volcano["origin"] == "source"
    assert first["teacher_calls"] == 0 and first["provenance"]["labels_teacher"] == "encoder:minilm@0.7"
    assert first["encoder"]["texts_encoded"] == 12 and len(first["sources"]) == 2
    assert first["labels"]["pools_labeled"] == 2 and first["counts"]["pool_documents"] == 10
    second = synthesize(_stage_config(tmp_path, sources), tmp_path / "run2")
    assert second["encoder"] == {"embedding_cache_hits": 12, "texts_encoded": 0}
    assert load_from_disk(str(tmp_path / "run2" / "pools"))["teacher_scores"] == pools["teacher_scores"]

    # the recipe side: `format: dataset` (what `format: synthesized` becomes) keeps the column
    from rerank_rl.data_synthesis.schema import ranking_dataset
    from rerank_rl.data_synthesis.sources import load_source
    from rerank_rl.rl.recipe import SourceSection

    rows = load_source(SourceSection(format="dataset", path=str(tmp_path / "run1" / "pools")))
    assert rows[0]["teacher_scores"] == pools[0]["teacher_scores"]
    assert "teacher_scores" in ranking_dataset(rows).column_names
    unscored = [{k: v for k, v in row.items() if k != "teacher_scores"} for row in rows]
    assert "teacher_scores" not in ranking_dataset(unscored).column_names  # the column stays optional


def test_stage_source_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps([{"query": "q", "hits": []}]))
    with pytest.raises(UserError, match=r"empty\.json: no query with candidates"):
        synthesize(_stage_config(tmp_path, [SourcesConfig(kind="rank_llm", path=str(empty))]), tmp_path / "a")
    with pytest.raises(UserError, match=r"^sources.path: kind 'rank_llm' reads a retrieve_results JSON file; "):
        synthesize(_stage_config(tmp_path, [SourcesConfig(kind="rank_llm", path=str(tmp_path))]), tmp_path / "a")
    unjudged = _write_rank_llm(tmp_path / "unjudged.json", {"102": PASSAGES["102"]})
    with pytest.raises(UserError, match=r"no judged queries found in .*unjudged\.json \(set judged_only: false"):
        synthesize(_stage_config(tmp_path, [SourcesConfig(kind="rank_llm", path=unjudged)]), tmp_path / "b")
    twice = [SourcesConfig(kind="rank_llm", path=unjudged, judged_only=False)] * 2
    with pytest.raises(UserError, match=r"^extra_sources\[0\]: query id '102' is also in sources "
                                        r"\(rank_llm:unjudged.json\); give one of them a `qid_prefix`"):
        synthesize(_stage_config(tmp_path, twice), tmp_path / "c")
    twice[1] = SourcesConfig(kind="rank_llm", path=unjudged, judged_only=False, qid_prefix="again-")
    summary = synthesize(_stage_config(tmp_path, twice), tmp_path / "d")
    assert summary["counts"]["pools"] == 2


def test_stage_labels_synthetic_queries_with_the_encoder(tmp_path, scripted, chat_server_cls):
    """Retrieved pools over a corpus plus DUQGen queries written by a scripted LLM; the encoder labels them all."""
    corpus = [f"{qid}-p{i}\t{text}" for qid, (_, texts) in PASSAGES.items() for i, text in enumerate(texts)]
    (tmp_path / "corpus.tsv").write_text("\n".join(corpus) + "\n")
    (tmp_path / "topics.tsv").write_text("101\thow do volcanoes erupt\n102\twhat do honeybees eat\n")
    (tmp_path / "qrels.txt").write_text("101 0 101-p1 1\n102 0 102-p0 1\n")
    source = SourcesConfig(kind="trec", path="", topics=str(tmp_path / "topics.tsv"),
                           qrels=str(tmp_path / "qrels.txt"), corpus=str(tmp_path / "corpus.tsv"))
    with chat_server_cls(scripted()) as server:
        cfg = _stage_config(tmp_path, [source])
        cfg.teacher = TeacherConfig(backend="openai", model="scripted", base_url=server.base_url,
                                    cache_dir=str(tmp_path / "cache"), max_retries=1, backoff_s=0.01)
        cfg.queries = QueriesConfig(enabled=True, num_queries=3, clusters=2, few_shot=1, keep_top_k=5)
        summary = synthesize(cfg, tmp_path / "run")
    pools = load_from_disk(str(tmp_path / "run" / "pools"))
    synthetic = [row for row in pools if row["origin"] == "synthetic"]
    assert synthetic and summary["counts"]["synthetic_queries"] == len(synthetic)
    for row in pools:
        assert len(row["teacher_scores"]) == len(row["doc_ids"]) and max(row["teacher_scores"]) == 10.0
        assert row["teacher"] == "encoder:minilm@0.7"
    for row in synthetic:  # the document the query was written from is its pseudo-judged positive: top grade
        source_doc = next(d for d, g in zip(row["doc_ids"], row["gold_labels"]) if g > 0)
        assert row["labels"][row["doc_ids"].index(source_doc)] == 2
    assert summary["provenance"]["teacher"] == "openai:scripted"  # the LLM wrote queries, the encoder labelled


@pytest.mark.data
def test_dl21_and_dl22_pools_from_the_example_config(shared_data, tmp_path):
    from rerank_rl.data_synthesis.readers import read_qrels
    from rerank_rl.rl.config import load_recipe

    dl = shared_data / "trec_dl"
    dl22 = dl / "BM25" / "retrieve_results_dl22.json"
    cfg = load_recipe("configs/synthesis_dl_teacher.yaml", [  # DL21 + DL22, two queries each (SciFact left out)
        f"sources.path={dl / 'BM25' / 'retrieve_results_dl21.json'}", "sources.max_queries=2",
        f"sources.qrels={dl / 'qrels' / 'qrels.dl21-passage.txt'}", f"teacher.cache_dir={tmp_path / 'cache'}",
        "pools.top_k=10", "pools.sample=5",
        f"extra_sources=[{{kind: rank_llm, path: '{dl22}', judged_only: false, max_queries: 2}}]"])
    summary = synthesize(cfg, tmp_path / "run")
    pools = load_from_disk(str(tmp_path / "run" / "pools"))
    assert summary["counts"]["pools"] == 4 and set(pools["source"]) == {
        "rank_llm:retrieve_results_dl21.json", "rank_llm:retrieve_results_dl22.json"}
    qrels = read_qrels(dl / "qrels" / "qrels.dl21-passage.txt")
    for row in pools:
        assert len(row["doc_ids"]) == 15 and max(row["teacher_scores"]) <= 10.0 and min(row["teacher_scores"]) > 0
        judged = qrels.get(row["qid"], {})
        for doc, label, teacher in zip(row["doc_ids"], row["labels"], row["teacher_labels"]):
            assert label == (judged[doc] if doc in judged else teacher)  # DL grades 0-3 kept as they are
        if row["source"].endswith("dl22.json"):
            assert not judged and max(row["labels"]) == 3
