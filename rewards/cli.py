"""`rerank-rl reward score`: score a JSONL file of completions with one or more rewards and summarise them, to
check a reward (or a sampled batch) before spending compute on training.

Input: one JSON object per line with a `completion` (a string or a list of chat messages) and the columns the
rewards read, e.g. `{"qid": "q1", "completion": "<answer>{...}</answer>", "doc_ids": [...], "labels": [...]}` for
list paradigms; pointwise rows carry `label`, `doc_id`, `ref_score` / `teacher_score`; classification rows carry
`gold_labels` and optionally `label_options` (see each reward module). An optional `prompt` is passed as prompts.
A key missing from some lines reads as None there. All lines are scored in one call per reward, so group-aware
rewards see whole queries.

Output per reward and component: count, mean, std, min, max, the share of groups (rows sharing a `qid`, two or
more values) whose values are all equal, i.e. that give GRPO no signal; per reward, the share of format failures
(from the `format_ok` component).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .contract import FORMAT_OK, group_rows, score_with_components
from .registry import get_reward

__all__ = ["read_completions", "summarize", "add_reward_parser", "run_reward_score"]


def read_completions(path: str | Path) -> tuple[list[Any], list[Any], dict[str, list]]:
    """(prompts, completions, columns) from a JSONL file; a malformed line raises the project's one-line
    `UserError` naming `path:line` (lines are read by `data_synthesis.readers.read_jsonl`)."""
    from rerank_rl.data_synthesis.readers import read_jsonl
    from rerank_rl.rl.errors import UserError, located

    records = []
    for lineno, record in read_jsonl(path):
        if "completion" not in record:
            raise located(path, lineno, "missing the 'completion' key")
        records.append(record)
    if not records:
        raise UserError(f"{path}: no completions in the file")
    keys = list(dict.fromkeys(k for r in records for k in r if k not in ("completion", "prompt")))
    columns = {key: [r.get(key) for r in records] for key in keys}
    return [r.get("prompt") for r in records], [r["completion"] for r in records], columns


def _stats(values: Sequence[float | None], groups: dict[Any, list[int]] | None) -> dict[str, float | int | None]:
    present = [float(v) for v in values if v is not None]
    count = len(present)
    mean = sum(present) / count if count else None
    out: dict[str, float | int | None] = {
        "count": count,
        "mean": mean,
        "std": math.sqrt(sum((v - mean) ** 2 for v in present) / count) if count else None,
        "min": min(present) if count else None,
        "max": max(present) if count else None,
        "zero_variance_groups": None,
    }
    if groups:
        scored = [[values[r] for r in rows if values[r] is not None] for rows in groups.values()]
        scored = [g for g in scored if len(g) >= 2]
        if scored:
            out["zero_variance_groups"] = sum(max(g) == min(g) for g in scored) / len(scored)
    return out


def summarize(specs: Sequence[str], prompts: list, completions: list, columns: dict[str, list]) -> dict[str, Any]:
    """Per reward spec: `format_failures` (share, or None) and stats of `total` and of every component."""
    groups = group_rows(columns["qid"]) if "qid" in columns else None
    report: dict[str, Any] = {}
    for spec in specs:
        reward = get_reward(spec)
        totals, components = score_with_components(reward, prompts, completions, **columns)
        checked = [v for v in components.get(FORMAT_OK, []) if v is not None]
        report[spec] = {
            "format_failures": (1.0 - sum(checked) / len(checked)) if checked else None,
            "components": {
                "total": _stats(totals, groups),
                **{name: _stats(series, groups) for name, series in components.items()},
            },
        }
    return report


def add_reward_parser(subparsers) -> None:
    """Register `reward score` on the `rerank-rl` subparsers."""
    parser = subparsers.add_parser("reward", help="inspect rewards")
    commands = parser.add_subparsers(dest="reward_command", required=True)
    score = commands.add_parser("score", help="score a JSONL file of completions and summarise each reward")
    score.add_argument(
        "--reward",
        required=True,
        help="comma-separated reward specs: registered names (grouprank, ndcg@10, ...), "
        "module:function or path/file.py:function",
    )
    score.add_argument("--input", required=True, help="JSONL file, one completion and its columns per line")
    score.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    score.set_defaults(func=run_reward_score)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _print_table(path: str, rows: int, report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{path}: {rows} completions")
    for header in ("reward", "component", "count", "mean", "std", "min", "max", "format fail", "zero-var groups"):
        table.add_column(header, justify="left" if header in ("reward", "component") else "right")
    for spec, entry in report.items():
        for i, (name, stats) in enumerate(entry["components"].items()):
            table.add_row(
                spec if i == 0 else "",
                name,
                *(_fmt(stats[key]) for key in ("count", "mean", "std", "min", "max")),
                _fmt(entry["format_failures"]) if i == 0 else "",
                _fmt(stats["zero_variance_groups"]),
            )
    console = Console()
    console.width = max(console.width, 130)  # pipes default to 80 columns, too narrow for nine
    console.print(table)


def run_reward_score(args) -> int:
    """Entry point of `rerank-rl reward score`. Bad input (a malformed line, an unknown reward, a missing column)
    becomes the CLI's one-line UserError, so the user sees `error: ...` and exit code 2."""
    from rerank_rl.rl.errors import UserError

    try:
        specs = [s.strip() for s in args.reward.split(",") if s.strip()]
        if not specs:
            raise ValueError("--reward: give at least one reward spec")
        prompts, completions, columns = read_completions(args.input)
        report = summarize(specs, prompts, completions, columns)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.json:
        print(json.dumps({"input": str(args.input), "completions": len(completions), "rewards": report}))
    else:
        _print_table(str(args.input), len(completions), report)
    return 0
