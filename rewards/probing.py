"""Run the hacking probes (`rewards.probes`) against a reward: how often each probe scores above the gold answer.

Each probe is scored in one call beside the gold answers of the same rows (same columns, same `qid`), as GRPO sees
a probe rollout among gold rollouts of the same prompt; group-aware rewards (ERank's r_RR) compare them jointly.
A probe that scores strictly above gold on any row *beats* the reward, which is then flagged with the probe's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .contract import score_with_components
from .probes import PROBES, build_probes, get_format

__all__ = ["TOLERANCE", "answer_format_of", "probe_reward"]

TOLERANCE = 1e-9  # float noise is not a preference


def answer_format_of(reward: Callable, default: str | None = None) -> str:
    """The output format a reward reads: its `answer_format`, else `default`, else the default paradigm's."""
    found = getattr(reward, "answer_format", None) or default
    if found:
        return found
    from rerank_rl.rl.paradigms import get_paradigm

    return get_paradigm("groupwise").answer_format


def _rates(gold: Sequence[float | None], probe: Sequence[float | None]) -> dict[str, Any]:
    pairs = [(g, p) for g, p in zip(gold, probe) if g is not None and p is not None]
    if not pairs:
        return {"pairs": 0, "above_gold_rate": None, "tie_rate": None, "below_gold_rate": None, "mean_gap": None}
    above = sum(p > g + TOLERANCE for g, p in pairs)
    tied = sum(abs(p - g) <= TOLERANCE for g, p in pairs)
    return {
        "pairs": len(pairs),
        "above_gold_rate": above / len(pairs),
        "tie_rate": tied / len(pairs),
        "below_gold_rate": (len(pairs) - above - tied) / len(pairs),
        "mean_gap": sum(p - g for g, p in pairs) / len(pairs),  # mean(probe - gold): how much the probe loses
    }


def probe_reward(
    reward: Callable,
    columns: dict[str, list],
    size: int,
    answer_format: str | None = None,
    tags: Sequence[str] | None = None,
) -> dict[str, Any]:
    """{format, tags, rows, flagged: [probe, ...], probes: {name: rates or None when the format has no such probe}}"""
    fmt = get_format(answer_format_of(reward, answer_format))
    tags = tuple(tags or getattr(reward, "tags", None) or fmt.tags)
    rows, gold, probes = build_probes(fmt, columns, size, tags)
    batch = {key: [values[r] for r in rows] * 2 for key, values in columns.items() if values is not None}
    report: dict[str, Any] = {}
    for name in PROBES:
        completions = probes[name]
        if completions is None:
            report[name] = None
            continue
        totals, _ = score_with_components(reward, None, gold + completions, **batch)
        report[name] = _rates(totals[: len(rows)], totals[len(rows) :])
    flagged = [name for name, rates in report.items() if rates and (rates["above_gold_rate"] or 0) > 0]
    return {"format": fmt.name, "tags": list(tags), "rows": len(rows), "flagged": flagged, "probes": report}
