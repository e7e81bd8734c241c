"""Reasoning traces for the SFT warm-start, in the groupwise paradigm's format.

Pools are cut into groups (multi-scale sizes, each holding the pool's best-labelled document), the teacher answers
each group's training prompt, and a trace is kept when it parses (cleanly, with `require_format`), scores at least
`min_coverage` of the passages, and its ranking agrees with the group's labels: nDCG@10 >= `min_ndcg`. Groups whose
labels are all 0 cannot measure agreement and are skipped (counted). Every trace, kept or not, is returned with
its agreement, so the filter can be audited.

SFT rows use TRL's conversational prompt-completion format: `prompt` = the paradigm's messages, `completion` = one
assistant message (the teacher's text), plus provenance columns.
"""

from __future__ import annotations

import numpy as np

from rerank_rl.data_synthesis import prompts
from rerank_rl.data_synthesis.groups import sample_groups
from rerank_rl.data_synthesis.teachers import Request, TeacherClient
from rerank_rl.rewards.metrics import ndcg_at_k


def trace_ndcg(scores: dict[int, float], labels: list[int], k: int = 10) -> float:
    """nDCG@k of the ranking the trace implies: scored positions by score (stable on ties), unscored ones last."""
    order = sorted(range(len(labels)), key=lambda i: (i not in scores, -scores.get(i, 0.0)))
    gains = np.array([[labels[i] for i in order]], dtype=float)
    return float(ndcg_at_k(gains, np.array([labels], dtype=float), k)[0])


def make_traces(examples: list[dict], client: TeacherClient, cfg, seed: int = 0) -> tuple[list[dict], dict]:
    """All traces (with `kept`), and statistics. Keep rows with `kept` for the SFT dataset."""
    groups = sample_groups(examples, cfg.group_sizes, cfg.groups_per_query, seed=seed)
    usable = [g for g in groups if max(g["labels"], default=0) > 0]
    version = prompts.trace_prompt_version()
    requests, checks, owners, messages = [], [], [], []
    for g, group in enumerate(usable):
        n = len(group["doc_ids"])
        msgs = prompts.trace_messages(group["query"], group["doc_texts"], cfg.variant, cfg.max_chars)
        messages.append(msgs)
        budget = cfg.max_new_tokens or prompts.trace_budget(n, cfg.variant)
        for k in range(cfg.samples):
            requests.append(Request(msgs, budget, cfg.temperature, sample=k,
                                    prefill=prompts.trace_prefill(cfg.variant)))
            checks.append(lambda text, n=n: prompts.read_trace(text, n, cfg.variant, cfg.require_format))
            owners.append(g)
    outcomes = client.ask(requests, "trace", checks)
    best: dict[int, tuple[float, dict, str]] = {}
    rows = []
    for g, outcome in zip(owners, outcomes):
        if outcome.status != "ok":
            continue
        group, parsed = usable[g], outcome.value
        agreement = trace_ndcg(parsed["scores"], group["labels"])
        rows.append({"group": g, "agreement": agreement, "coverage": parsed["coverage"],
                     "format_ok": parsed["format_ok"], "text": outcome.text.strip()})
        if parsed["coverage"] >= cfg.min_coverage and (g not in best or agreement > best[g][0]):
            best[g] = (agreement, parsed, outcome.text)
    chosen = {g: b[2].strip() for g, b in best.items() if b[0] >= cfg.min_ndcg}
    traces = []
    for row in rows:
        group = usable[row["group"]]
        kept = chosen.get(row["group"]) == row["text"]
        if kept:
            del chosen[row["group"]]  # one kept trace per group, even when two samples wrote the same text
        traces.append({
            "prompt": messages[row["group"]],
            "completion": [{"role": "assistant", "content": row["text"]}],
            "qid": group["qid"], "source_qid": group["source_qid"], "query": group["query"],
            "doc_ids": group["doc_ids"], "labels": [int(x) for x in group["labels"]],
            "group_size": len(group["doc_ids"]), "agreement_ndcg10": row["agreement"],
            "coverage": row["coverage"], "format_ok": row["format_ok"], "kept": kept,
            "variant": cfg.variant, "prompt_version": version, "teacher": client.identity, "seed": seed,
        })
    kept_rows = sum(t["kept"] for t in traces)
    agreements = [t["agreement_ndcg10"] for t in traces]
    stats = {
        "groups": len(groups),
        "groups_without_positive": len(groups) - len(usable),
        "requests": len(requests),
        "parsed": len(rows),
        "unparsed": len(requests) - len(rows),
        "below_coverage": sum(r["coverage"] < cfg.min_coverage for r in rows),
        "kept": kept_rows,
        "keep_rate": kept_rows / len(usable) if usable else 0.0,
        "agreement_mean": float(np.mean(agreements)) if agreements else None,
        "agreement_quantiles": ({q: float(np.quantile(agreements, float(q))) for q in ("0.25", "0.5", "0.75")}
                                if agreements else None),
        "min_ndcg": cfg.min_ndcg,
        "prompt_version": version,
    }
    return traces, stats
