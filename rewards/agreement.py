"""Do two rewards agree? Rank correlation (Spearman, Kendall's tau-b, scipy) of their values over the same
completions, and of each against a reference metric of the labels (nDCG@10 by default).

GRPO only sees differences between the rollouts of one prompt, so besides the correlation over all rows the
report gives the mean correlation within `qid` groups (groups with at least 3 rows where neither reward is
constant; a constant group has no ranking to agree on).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .contract import group_rows, score_with_components

__all__ = ["correlate", "compare_rewards"]


def _pairs(a: Sequence[float | None], b: Sequence[float | None], rows: Sequence[int]) -> tuple[list, list]:
    kept = [(a[r], b[r]) for r in rows if a[r] is not None and b[r] is not None]
    return [x for x, _ in kept], [y for _, y in kept]


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def correlate(a: Sequence[float | None], b: Sequence[float | None], groups: dict | None = None) -> dict[str, Any]:
    """{rows, spearman, kendall, within_group_spearman, groups}; a correlation is None where undefined
    (fewer than 2 rows, or one side constant)."""
    from scipy.stats import kendalltau, spearmanr

    x, y = _pairs(a, b, range(len(a)))
    out: dict[str, Any] = {"rows": len(x), "spearman": None, "kendall": None}
    if len(x) >= 2 and len(set(x)) > 1 and len(set(y)) > 1:
        out["spearman"] = _finite(spearmanr(x, y).statistic)
        out["kendall"] = _finite(kendalltau(x, y).statistic)
    within = []
    for rows in (groups or {}).values():
        gx, gy = _pairs(a, b, rows)
        if len(gx) >= 3 and len(set(gx)) > 1 and len(set(gy)) > 1:
            value = _finite(spearmanr(gx, gy).statistic)
            if value is not None:
                within.append(value)
    out["within_group_spearman"] = sum(within) / len(within) if within else None
    out["groups"] = len(within)
    return out


def compare_rewards(
    named: dict[str, Callable], reference: tuple[str, Callable], prompts: list, completions: list, columns: dict
) -> dict[str, Any]:
    """Correlations of every pair of rewards in `named` and of each against the `reference` metric."""
    groups = group_rows(columns["qid"]) if "qid" in columns else None
    totals = {spec: score_with_components(r, prompts, completions, **columns)[0] for spec, r in named.items()}
    ref_name, ref_reward = reference
    ref_totals = score_with_components(ref_reward, prompts, completions, **columns)[0]
    specs = list(named)
    return {
        "reference": ref_name,
        "pairs": {
            f"{specs[i]} vs {specs[j]}": correlate(totals[specs[i]], totals[specs[j]], groups)
            for i in range(len(specs))
            for j in range(i + 1, len(specs))
        },
        "vs_reference": {spec: correlate(totals[spec], ref_totals, groups) for spec in specs},
    }
