"""The synthesis stage: sources -> (synthetic queries) -> candidate pools -> teacher labels -> reasoning traces.

Each source (`sources`, then every `extra_sources` entry) is read, gets its synthetic queries, pools and labels on
its own (its own retriever, its own qrels scale); the pools of all sources are written together. Labels come from
the LLM `teacher` (pointwise + listwise, data_synthesis/labels.py) or, with `labels.teacher: encoder`, from a
bi-encoder fused with the first stage (data_synthesis/encoder_labels.py, which also writes `teacher_scores`).

`synthesize(config, out_dir)` is a plain function; recipes call it as their first stage and `rerank-rl synthesize`
runs it alone. It writes into out_dir:

    config.yaml     the resolved SynthesisConfig
    pools/          ranking examples (data_synthesis.schema) + teacher columns + provenance (HF dataset); pools
                    with no document are dropped (counted in summary['pools']['empty_dropped'])
    traces/         every parsed trace with its agreement and a `kept` flag (HF dataset)
    sft/            kept traces in TRL's conversational prompt-completion format + provenance (HF dataset)
    queries/        synthetic-query attempts, kept or not (HF dataset, when queries are enabled)
    summary.json    counts, label distribution, filter rates, teacher calls, cache hits, failures, wall time

Re-running is resuming: every teacher reply and encoder embedding is cached on disk as soon as it arrives, so a
second run (or one after a kill) pays only for what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import yaml
from datasets import Dataset, Features, Sequence, Value

from rerank_rl.data_synthesis.config import SynthesisConfig
from rerank_rl.data_synthesis.corpora import load_collection
from rerank_rl.data_synthesis.encoder_labels import EncoderTeacher, label_pools_with_encoder
from rerank_rl.data_synthesis.labels import label_pools
from rerank_rl.data_synthesis.pools import DenseIndex, HybridIndex, build_pools, build_retriever, pool_depth
from rerank_rl.data_synthesis.prompts import PROMPT_VERSION, trace_prompt_version
from rerank_rl.data_synthesis.schema import RANKING_WITH_TEACHER_FEATURES, check_ranking_example
from rerank_rl.data_synthesis.teachers import make_client, synthesis_cache_dir, teacher_identity
from rerank_rl.rl.errors import UserError

_MESSAGES = [{"role": Value("string"), "content": Value("string")}]
POOL_FEATURES = Features({
    **RANKING_WITH_TEACHER_FEATURES, "origin": Value("string"), "source": Value("string"),
    "gold_labels": Sequence(Value("int32")), "encoder_scores": Sequence(Value("float32")),
    "teacher_labels": Sequence(Value("int32")), "pointwise_scores": Sequence(Value("float32")),
    "listwise_ranks": Sequence(Value("int32")), "fused_scores": Sequence(Value("float32")),
    "teacher": Value("string"), "prompt_version": Value("string"), "seed": Value("int64"),
})
TRACE_FEATURES = Features({
    "prompt": _MESSAGES, "completion": _MESSAGES, "qid": Value("string"), "source_qid": Value("string"),
    "query": Value("string"), "doc_ids": Sequence(Value("string")), "labels": Sequence(Value("int32")),
    "group_size": Value("int32"), "agreement_ndcg10": Value("float32"), "coverage": Value("float32"),
    "format_ok": Value("bool"), "kept": Value("bool"), "variant": Value("string"),
    "prompt_version": Value("string"), "teacher": Value("string"), "seed": Value("int64"),
})
QUERY_FEATURES = Features({
    "qid": Value("string"), "query": Value("string"), "raw": Value("string"), "status": Value("string"),
    "source_doc_id": Value("string"), "cluster": Value("int32"), "source_rank": Value("int32"),
    "kept": Value("bool"), "teacher": Value("string"), "prompt_version": Value("string"), "seed": Value("int64"),
})


def _save(rows: list[dict], features: Features, path: Path) -> int:
    present = Features({k: v for k, v in features.items() if not rows or k in rows[0]})
    data = Dataset.from_list(rows, features=present) if rows else Dataset.from_dict(
        {k: [] for k in present}, features=present)
    data.save_to_disk(str(path), num_shards=1)  # an empty dataset saved with 0 shards cannot be loaded back
    return len(rows)


def _embeddings(retriever, config: SynthesisConfig, corpus: dict[str, str], cache_root: Path):
    if isinstance(retriever, DenseIndex):
        return retriever.embeddings
    if isinstance(retriever, HybridIndex):
        return retriever.dense.embeddings
    p = config.pools
    return DenseIndex(corpus, p.encoder, p.encoder_batch_size, p.max_seq_length, cache_root).embeddings


def _pool_stats(pools: list[dict], qrels: dict) -> dict:
    found = total = 0
    for ex in pools:
        positives = {d for d, r in qrels.get(ex["qid"], {}).items() if r > 0}
        found += len(positives & set(ex["doc_ids"]))
        total += len(positives)
    sizes = [len(ex["doc_ids"]) for ex in pools]
    return {"pools": len(pools), "mean_size": sum(sizes) / max(1, len(sizes)), "min_size": min(sizes, default=0),
            "judged_positives": total, "positives_in_pools": found,
            "positive_recall": found / total if total else None}


def _combine(parts: list[dict]) -> dict:
    """Per-source statistics summed into one (numbers add, nested dicts combine, other values: the first's)."""
    if len(parts) == 1:
        return parts[0]
    out: dict = {}
    for part in parts:
        for key, value in part.items():
            if key not in out:
                out[key] = value
            elif isinstance(value, dict):
                out[key] = _combine([out[key], value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and out[key] is not None:
                out[key] += value
    return out


def _source_pools(src, key: str, taken: dict[str, str], config: SynthesisConfig, client, encoder,
                  cache_root: Path, syn_prefix: str):
    """One source (config key `key`) read, (synthetic queries,) pooled and labelled: (pools, qrels, query rows,
    its summary part). `taken` maps the query ids of earlier sources to theirs; a repeated id stops the run."""
    coll = load_collection(src, config.seed)
    clash = next((q for q in coll.queries if q in taken), None)
    if clash is not None:
        raise UserError(f"{key}: query id {clash!r} is also in {taken[clash]}; give one of them a `qid_prefix`")
    part: dict = {"name": coll.name, "source_queries": len(coll.queries)}
    retriever = None
    if coll.hits is None or config.queries.enabled:  # given candidate lists need no retrieval for their queries
        retriever = build_retriever(config.pools, coll.corpus, cache_root)
    queries, qrels = dict(coll.queries), {q: coll.qrels.get(q, {}) for q in coll.queries}
    origin = {q: "source" for q in queries}
    rows: list[dict] = []
    if config.queries.enabled:
        from rerank_rl.data_synthesis.queries import generate_queries

        shots = [(coll.corpus[d], coll.queries[q]) for q in sorted(coll.queries)
                 for d, r in sorted(qrels[q].items()) if r > 0 and d in coll.corpus]
        embeddings = _embeddings(retriever, config, coll.corpus, cache_root)
        syn, syn_qrels, rows, part["queries"] = generate_queries(
            coll.corpus, list(coll.corpus), embeddings, retriever, shots, client, config.queries, config.seed,
            qid_prefix=syn_prefix)
        queries.update(syn)
        qrels.update(syn_qrels)
        origin.update({q: "synthetic" for q in syn})
    hits = None
    if coll.hits is not None:
        hits = {q: coll.hits[q] for q in coll.queries}
        extra = [q for q in queries if q not in hits]
        if extra:
            hits.update(zip(extra, retriever.search([queries[q] for q in extra], pool_depth(config.pools))))
    taken.update({q: f"{key} ({coll.name})" for q in queries})
    pools = build_pools(retriever, queries, qrels, coll.corpus, config.pools, config.seed, hits=hits)
    empty = sum(not ex["doc_ids"] for ex in pools)
    pools = [ex for ex in pools if ex["doc_ids"]]
    if not pools:
        raise UserError(f"sources ({coll.name}): every pool is empty: the first stage found nothing for any query")
    part["pools"] = {**_pool_stats(pools, qrels), "empty_dropped": empty}
    part["synthetic_queries"] = sum(origin[ex["qid"]] == "synthetic" for ex in pools)
    if config.labels.enabled:
        part["labels"] = (label_pools_with_encoder(pools, qrels, config.labels, encoder) if encoder is not None
                          else label_pools(pools, qrels, client, config.labels))
    for ex in pools:
        ex.update(origin=origin[ex["qid"]], source=coll.name)
    return pools, qrels, rows, part


def synthesize(config: SynthesisConfig, out_dir: str | Path) -> dict:
    """Run the whole stage into `out_dir` and return the summary (also written to summary.json)."""
    started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    sources = [config.sources, *config.extra_sources]
    cache_root = synthesis_cache_dir(config.teacher)
    by_encoder = config.labels.enabled and config.labels.teacher == "encoder"
    # resolved before any heavy work, so that a missing encoder stops the run at once
    encoder = EncoderTeacher(config.labels.encoder, cache_root / "embeddings.sqlite" if config.teacher.cache
                             else None) if by_encoder else None
    uses_teacher = (config.labels.enabled and not by_encoder) or config.traces.enabled or config.queries.enabled
    client = make_client(config.teacher) if uses_teacher else None
    identity = teacher_identity(config.teacher) if uses_teacher else ""
    label_identity = "" if not config.labels.enabled else encoder.identity if encoder else identity
    label_prompt = PROMPT_VERSION if config.labels.enabled and not by_encoder else ""
    summary: dict = {"output_dir": str(out), "seed": config.seed,
                     "provenance": {"teacher": identity, "labels_teacher": label_identity,
                                    "prompt_version": PROMPT_VERSION if uses_teacher else "", "seed": config.seed}}
    pools, qrels, query_rows, parts = [], {}, [], []
    taken: dict[str, str] = {}  # query id -> the source that has it
    try:
        for k, src in enumerate(sources):
            key = f"extra_sources[{k - 1}]" if k else "sources"
            got, got_qrels, rows, part = _source_pools(src, key, taken, config, client, encoder, cache_root,
                                                       f"s{k}-" if len(sources) > 1 else "")
            pools += got
            qrels.update(got_qrels)
            query_rows += rows
            parts.append(part)
        summary["source"] = "+".join(p["name"] for p in parts)
        if config.queries.enabled:
            _save(query_rows, QUERY_FEATURES, out / "queries")
            summary["queries"] = _combine([p["queries"] for p in parts])
            sampled = summary["queries"]["documents_sampled"]
            summary["queries"]["keep_rate"] = summary["queries"]["kept"] / sampled if sampled else 0.0
        summary["pools"] = {**_pool_stats(pools, qrels),
                            "empty_dropped": sum(p["pools"]["empty_dropped"] for p in parts)}
        if config.labels.enabled:
            summary["labels"] = _combine([p["labels"] for p in parts])
        if len(parts) > 1:
            summary["sources"] = parts
        for ex in pools:
            check_ranking_example(ex, where=f"pool {ex['qid']!r}")
            ex.update(teacher=label_identity, prompt_version=label_prompt, seed=config.seed)
        summary.setdefault("labels", {})["label_distribution"] = {
            str(k): v for k, v in sorted(Counter(x for ex in pools for x in ex["labels"]).items())}
        _save(pools, POOL_FEATURES, out / "pools")

        sft_rows = 0
        if config.traces.enabled:
            from rerank_rl.data_synthesis.traces import make_traces

            traces, summary["traces"] = make_traces(pools, client, config.traces, config.seed)
            _save(traces, TRACE_FEATURES, out / "traces")
            sft_rows = _save([t for t in traces if t["kept"]], TRACE_FEATURES, out / "sft")
            summary["provenance"]["trace_prompt_version"] = trace_prompt_version()
    finally:
        if client is not None:
            client.close()
        if encoder is not None:
            encoder.close()

    teacher = client.totals() if client is not None else {}
    summary["counts"] = {
        "source_queries": sum(p["source_queries"] for p in parts),
        "synthetic_queries": sum(p["synthetic_queries"] for p in parts),
        "pools": len(pools), "pool_documents": sum(len(ex["doc_ids"]) for ex in pools), "sft_rows": sft_rows,
    }
    if encoder is not None:
        summary["encoder"] = dict(encoder.stats)
    summary["filter_rates"] = {
        "traces_rejected": 1 - summary["traces"]["keep_rate"] if "traces" in summary else None,
        "queries_rejected": 1 - summary["queries"]["keep_rate"] if "queries" in summary else None,
    }
    summary["teacher"] = teacher
    summary["teacher_calls"] = teacher.get("calls", 0)
    summary["cache_hits"] = teacher.get("cache_hits", 0)
    summary["failures"] = {
        "failed": teacher.get("failed", 0), "invalid": teacher.get("invalid", 0),
        "by_kind": {k: {"failed": s["failed"], "invalid": s["invalid"], "errors": s["errors"]}
                    for k, s in teacher.get("by_kind", {}).items()},
    }
    summary["warnings"] = _warnings(summary, config)
    summary["wall_time_s"] = round(time.time() - started, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _warnings(summary: dict, config: SynthesisConfig) -> list[str]:
    """Plain-language notes on results that a user should not miss."""
    notes = []
    if config.traces.enabled and not summary["counts"]["sft_rows"]:
        notes.append("no SFT rows: no trace parsed and agreed with the labels (see traces/ and summary['traces']); "
                     "a stronger teacher, traces.require_format=false or a lower traces.min_ndcg may help")
    if summary["failures"]["failed"]:
        notes.append(f"{summary['failures']['failed']} teacher requests failed after retries; their items are "
                     "missing from the outputs and a re-run retries only them")
    if summary["pools"]["empty_dropped"]:
        notes.append(f"{summary['pools']['empty_dropped']} queries got an empty pool (the first stage found nothing) "
                     "and were dropped")
    if summary.get("labels", {}).get("pools_without_teacher_labels"):
        notes.append(f"{summary['labels']['pools_without_teacher_labels']} pools got no usable teacher answer "
                     "and keep their gold labels")
    return notes


def _resolve(recipe) -> SynthesisConfig:
    if isinstance(recipe, SynthesisConfig):
        return recipe
    section = getattr(recipe, "synthesize", None)
    if isinstance(section, SynthesisConfig):
        return section
    raise UserError(f"recipe for paradigm {getattr(recipe, 'paradigm', '?')!r} has no 'synthesize' section")


def synthesize_command(args) -> int:
    """`rerank-rl synthesize CONFIG [--set k=v] [--output-dir DIR]`: a synthesis YAML or a recipe with `synthesize:`."""
    import rerank_rl.data_synthesis.config  # noqa: F401  (registers the `synthesis` schema)
    from rerank_rl.rl.config import load_recipe

    recipe = load_recipe(args.config, args.overrides)
    config = _resolve(recipe)
    if args.output_dir:
        out = args.output_dir
    elif recipe is config and getattr(recipe, "output_dir", ""):
        out = recipe.output_dir  # a synthesis file names its own folder
    else:  # a recipe's output_dir is the parent of its runs
        out = str(Path(getattr(recipe, "output_dir", "") or "runs") / f"synthesis-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = synthesize(config, out)
    counts = summary["counts"]
    print(f"synthesis written to {out}")
    print(f"  pools {counts['pools']} ({counts['pool_documents']} documents), synthetic queries "
          f"{counts['synthetic_queries']}, SFT rows {counts['sft_rows']}")
    print(f"  teacher calls {summary['teacher_calls']}, cache hits {summary['cache_hits']}, failed "
          f"{summary['failures']['failed']}, unparsed {summary['failures']['invalid']}; "
          f"wall time {summary['wall_time_s']} s")
    if "encoder" in summary:
        encoded = summary["encoder"]
        print(f"  encoder teacher {summary['provenance']['labels_teacher']}: {encoded.get('texts_encoded', 0)} texts "
              f"encoded, {encoded.get('embedding_cache_hits', 0)} from the cache")
    for note in summary["warnings"]:
        print(f"  warning: {note}")
    return 0
