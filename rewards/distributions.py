"""What GRPO's advantages see: a reward's distribution and its spread within groups, as numbers and as PNGs.

A group whose rewards are all equal has zero advantage everywhere and teaches nothing. When a file holds more
rollouts per `qid` than the run samples (`--group-size G`), the share of zero-variance groups *at G* is the
chance that G rollouts drawn without replacement from the query's rows all score the same:
Σ_v C(count_v, G) / C(n, G), averaged over the queries with at least G scored rows.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["zero_variance_share", "group_stds", "write_plots"]


def _scored(values: Sequence[float | None], groups: dict[Any, list[int]]) -> list[list[float]]:
    return [[float(values[r]) for r in rows if values[r] is not None] for rows in groups.values()]


def zero_variance_share(values: Sequence[float | None], groups: dict[Any, list[int]], size: int | None = None):
    """Share of groups (rows sharing a qid) with all values equal; with `size`, of random size-`size` subgroups.
    None when no group has enough scored rows (2, or `size`)."""
    shares = []
    for scored in _scored(values, groups):
        n = len(scored)
        if size is None:
            if n >= 2:
                shares.append(float(max(scored) == min(scored)))
        elif n >= size:
            counts = Counter(scored).values()
            shares.append(sum(math.comb(c, size) for c in counts) / math.comb(n, size))
    return sum(shares) / len(shares) if shares else None


def group_stds(values: Sequence[float | None], groups: dict[Any, list[int]]) -> list[float]:
    """Population std of each group with 2+ scored rows: the scale GRPO divides advantages by."""
    out = []
    for scored in _scored(values, groups):
        if len(scored) >= 2:
            mean = sum(scored) / len(scored)
            out.append(math.sqrt(sum((v - mean) ** 2 for v in scored) / len(scored)))
    return out


def _title(reward: str, detail: str) -> str:
    short = reward if len(reward) <= 45 else "…" + reward[-44:]  # file plug-ins have long specs
    return f"{short}\n{detail}"


def _filename(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9_.@-]+", "_", p).strip("_") or "x" for p in parts) + ".png"


def write_plots(
    folder: str | Path,
    series: dict[str, dict[str, Sequence[float | None]]],
    groups: dict[Any, list[int]] | None,
    group_size: int | None = None,
) -> list[Path]:
    """One histogram PNG per reward and component (`series[reward][component]`), and per reward one of the
    within-group std with the zero-variance share in its title. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)

    for reward, components in series.items():
        for component, values in components.items():
            present = [float(v) for v in values if v is not None]
            fig, ax = plt.subplots(figsize=(5, 3.2))
            ax.hist(present, bins=min(30, max(5, len(set(present)))) if present else 5, color="#4477aa")
            ax.set(title=_title(reward, f"{component}, {len(present)} values"), xlabel=component, ylabel="completions")
            save(fig, _filename(reward, component))
        if groups:
            totals = components["total"]
            stds = group_stds(totals, groups)
            share = zero_variance_share(totals, groups, group_size)
            at = f" at G={group_size}" if group_size else ""
            fig, ax = plt.subplots(figsize=(5, 3.2))
            ax.hist(stds, bins=20, color="#cc6677")
            shown = "-" if share is None else f"{share:.0%}"
            ax.set(title=_title(reward, f"zero-variance groups{at}: {shown}"), xlabel="std of the total within a qid",
                   ylabel="groups")
            save(fig, _filename(reward, "group_spread"))
    return written
