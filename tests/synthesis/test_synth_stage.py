"""The whole synthesis stage against a scripted OpenAI-compatible server on 127.0.0.1: outputs, provenance,
failure recording, and a re-run served from the cache. Plus config loading and the CLI."""

from __future__ import annotations

import json
import random

import pytest
from datasets import load_from_disk

from rerank_rl.data_synthesis.config import (
    LabelsConfig,
    PoolsConfig,
    QueriesConfig,
    SourcesConfig,
    SynthesisConfig,
    TeacherConfig,
    TracesConfig,
)
from rerank_rl.data_synthesis.stage import synthesize

TOPICS = {
    "volcano": "volcano eruption lava magma crater ash",
    "honeybee": "honeybee colony pollen hive nectar queen",
    "glacier": "glacier melting ice meltwater moraine retreat",
    "vaccine": "vaccine antibody immune booster dose response",
}
FILLER = "study report measured results across several sites during recent years with careful methods".split()


@pytest.fixture
def toy_collection(tmp_path):
    rng = random.Random(3)
    corpus, qrels, topics = [], [], []
    for t, (name, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        for i in range(10):
            text = " ".join(rng.sample(vocab, 3 if i < 2 else 1) + rng.sample(FILLER, 8))
            corpus.append(f"{name}-{i}\t{name.title()} note {i}. {text}.")
        topics.append(f"q{t}\twhat drives {vocab[0]} {vocab[1]} {vocab[2]}")
        qrels += [f"q{t} 0 {name}-0 2", f"q{t} 0 {name}-1 1"]
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "corpus.tsv").write_text("\n".join(corpus) + "\n")
    (folder / "topics.tsv").write_text("\n".join(topics) + "\n")
    (folder / "qrels.txt").write_text("\n".join(qrels) + "\n")
    return folder


def _config(folder, base_url, cache_dir, queries=True) -> SynthesisConfig:
    return SynthesisConfig(
        seed=1,
        sources=SourcesConfig(kind="trec", path="", topics=str(folder / "topics.tsv"), qrels=str(folder / "qrels.txt"),
                              corpus=str(folder / "corpus.tsv")),
        pools=PoolsConfig(retriever="bm25", top_k=4, sample=4, sample_from=5, sample_to=30, include_positives=True),
        teacher=TeacherConfig(backend="openai", model="scripted", base_url=base_url, cache_dir=str(cache_dir),
                              concurrency=4, max_retries=2, backoff_s=0.01, backoff_max_s=0.02, timeout_s=10),
        labels=LabelsConfig(pointwise_samples=2, listwise_window=4, listwise_stride=2),
        traces=TracesConfig(variant="reasoning", group_sizes=[3, 4], groups_per_query=2, min_ndcg=0.4),
        queries=QueriesConfig(enabled=queries, num_queries=4, clusters=2, few_shot=1, keep_top_k=5),
    )


def test_stage_outputs_provenance_and_cache_rerun(toy_collection, tmp_path, scripted, chat_server_cls):
    with chat_server_cls(scripted()) as server:
        cfg = _config(toy_collection, server.base_url, tmp_path / "cache")
        first = synthesize(cfg, tmp_path / "run1")
        served = server.total
        second = synthesize(cfg, tmp_path / "run2")
        assert server.total == served  # the re-run never reached the server

    assert first["teacher_calls"] == served > 0 and first["cache_hits"] == 0
    assert second["teacher_calls"] == 0 and second["cache_hits"] == first["teacher"]["requests"]
    assert first["failures"]["failed"] == 0 and first["failures"]["invalid"] == 0
    assert json.loads((tmp_path / "run1" / "summary.json").read_text()) == first
    # synthetic queries: generated from documents, kept when BM25 leads back to the document
    assert first["queries"]["documents_sampled"] == 4 and first["queries"]["kept"] >= 1
    assert first["counts"]["synthetic_queries"] == first["queries"]["kept"]
    pools = load_from_disk(str(tmp_path / "run1" / "pools"))
    assert len(pools) == 4 + first["queries"]["kept"]
    row = pools[0]
    assert row["qid"] == "q0" and row["origin"] == "source" and row["teacher"] == "openai:scripted"
    assert row["prompt_version"] == "synth-v1" and row["seed"] == 1
    assert "volcano-0" in row["doc_ids"] and row["labels"][row["doc_ids"].index("volcano-0")] == 3  # merged gold
    assert all(t is not None for t in row["teacher_labels"]) and None not in row["pointwise_scores"]
    synthetic = [r for r in pools if r["origin"] == "synthetic"]
    assert synthetic and all(max(r["labels"]) > 0 for r in synthetic)
    # SFT data: TRL conversational prompt-completion, only traces that agree with the labels
    sft = load_from_disk(str(tmp_path / "run1" / "sft"))
    assert len(sft) == first["counts"]["sft_rows"] == first["traces"]["kept"] > 0
    example = sft[0]
    assert [m["role"] for m in example["prompt"]] == ["system", "user"]
    assert example["completion"][0]["role"] == "assistant" and "<answer>" in example["completion"][0]["content"]
    assert example["completion"][0]["content"].startswith("<reason>")
    assert all(a >= 0.4 for a in sft["agreement_ndcg10"]) and set(sft["teacher"]) == {"openai:scripted"}
    from rerank_rl.rl.paradigms import groupwise

    assert set(sft["prompt_version"]) == {groupwise.PROMPT_VERSION}
    traces = load_from_disk(str(tmp_path / "run1" / "traces"))
    assert len(traces) == first["traces"]["parsed"] and sum(traces["kept"]) == len(sft)
    # the re-run wrote the same data
    assert load_from_disk(str(tmp_path / "run2" / "sft"))["completion"] == sft["completion"]
    assert load_from_disk(str(tmp_path / "run2" / "pools"))["labels"] == pools["labels"]


def test_endpoint_failures_are_recorded_and_nothing_else_is_lost(toy_collection, tmp_path, scripted,
                                                                   chat_server_cls):
    # documents honeybee-3 (always HTTP 500) and glacier-2 (answers that no parser accepts) spoil every prompt
    # they appear in; volcano-* prompts fail twice before succeeding
    text = (toy_collection / "corpus.tsv").read_text()
    text = text.replace("Honeybee note 3.", "Honeybee note 3 ALWAYS500.")
    text = text.replace("Glacier note 2.", "Glacier note 2 CHATTY.")
    (toy_collection / "corpus.tsv").write_text(text.replace("Volcano note", "Volcano FLAKY note"))
    responder = scripted(fail={"ALWAYS500": "error", "CHATTY": "nonsense", "FLAKY": "flaky"})
    with chat_server_cls(responder) as server:
        cfg = _config(toy_collection, server.base_url, tmp_path / "cache", queries=False)
        cfg.pools.include_positives = False
        summary = synthesize(cfg, tmp_path / "run")
    failures = summary["failures"]
    assert failures["failed"] > 0 and failures["invalid"] > 0
    assert any("500" in e or "Internal" in e for e in failures["by_kind"]["pointwise"]["errors"])
    assert summary["teacher"]["calls"] > summary["teacher"]["requests"]  # retries were paid for
    pools = load_from_disk(str(tmp_path / "run" / "pools"))
    assert len(pools) == 4  # every query still has its pool
    for row in pools:
        for doc, grade in zip(row["doc_ids"], row["pointwise_scores"]):
            spoiled = doc in ("honeybee-3", "glacier-2")
            assert (grade is None) == spoiled, doc  # only the spoiled documents lost their pointwise grade
        assert all(t is not None for t in row["teacher_labels"])  # fusion still labels them (ranked last)
    assert (tmp_path / "run" / "sft").exists() and summary["counts"]["sft_rows"] > 0


def test_synthesis_yaml_loads_validates_and_overrides(tmp_path):
    from rerank_rl.rl.config import load_recipe
    from rerank_rl.rl.errors import UserError

    cfg = load_recipe("configs/synthesis_scifact.yaml", ["pools.top_k=5", "teacher.batch_size=2"])
    assert isinstance(cfg, SynthesisConfig) and cfg.paradigm == "synthesis"
    assert cfg.pools.top_k == 5 and cfg.pools.sample == 40 and cfg.teacher.batch_size == 2
    assert cfg.labels.beta == 0.5 and cfg.labels.rank_cuts == [2.0, 5.0, 15.0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("paradigm: synthesis\npools:\n  topk: 3\n")
    with pytest.raises(UserError, match=r"bad.yaml: unknown key 'pools.topk'"):
        load_recipe(bad)
    bad.write_text("paradigm: synthesis\nteacher:\n  backend: openai\n")
    with pytest.raises(UserError, match="base_url"):
        load_recipe(bad)


def test_cli_runs_pools_only_synthesis(toy_collection, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    config = tmp_path / "pools_only.yaml"
    config.write_text(
        "paradigm: synthesis\n"
        f"sources: {{kind: trec, path: '', topics: {toy_collection / 'topics.tsv'}, "
        f"qrels: {toy_collection / 'qrels.txt'}, corpus: {toy_collection / 'corpus.tsv'}}}\n"
        "pools: {retriever: bm25, top_k: 3, sample: 2, sample_from: 4, sample_to: 20}\n"
        "labels: {enabled: false}\ntraces: {enabled: false}\n"
    )
    cli = [sys.executable, "-m", "rerank_rl.rl.cli", "synthesize", str(config)]
    done = subprocess.run(cli + ["--set", "pools.top_k=2", "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=repo)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["pools"] == 4 and summary["pools"]["mean_size"] == 4
    assert summary["teacher_calls"] == 0 and "pools 4" in done.stdout
    assert len(load_from_disk(str(tmp_path / "out" / "pools"))) == 4
    # a groupwise recipe runs its `synthesize:` section
    recipe = tmp_path / "recipe.yaml"
    body = config.read_text().replace("paradigm: synthesis\n", "")
    recipe.write_text("paradigm: groupwise\nsynthesize:\n" + "".join(f"  {line}\n" for line in body.splitlines()))
    done = subprocess.run([sys.executable, "-m", "rerank_rl.rl.cli", "synthesize", str(recipe), "--set",
                           "synthesize.pools.sample=1", "--output-dir", str(tmp_path / "out2")],
                          capture_output=True, text=True, timeout=300, cwd=repo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "out2" / "summary.json").read_text())["pools"]["mean_size"] == 4
    wrong = subprocess.run(cli + ["--set", "pools.nope=1"], capture_output=True, text=True, timeout=300, cwd=repo)
    assert wrong.returncode == 2 and "unknown key 'pools.nope'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_no_agreeing_trace_gives_an_empty_loadable_sft_dataset_and_a_warning(toy_collection, tmp_path, scripted,
                                                                              chat_server_cls):
    with chat_server_cls(scripted()) as server:
        cfg = _config(toy_collection, server.base_url, tmp_path / "cache", queries=False)
        cfg.labels.enabled = False
        cfg.traces.min_ndcg = 1.01  # nothing can agree that well
        summary = synthesize(cfg, tmp_path / "run")
    sft = load_from_disk(str(tmp_path / "run" / "sft"))
    assert len(sft) == 0 and "prompt" in sft.column_names and "completion" in sft.column_names
    assert summary["counts"]["sft_rows"] == 0 and summary["filter_rates"]["traces_rejected"] == 1.0
    assert any("no SFT rows" in w for w in summary["warnings"])
    pools = load_from_disk(str(tmp_path / "run" / "pools"))
    assert "teacher_labels" not in pools.column_names and pools[0]["teacher"] == ""
