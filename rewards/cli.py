"""`rerank-rl reward score`: score a JSONL file of completions (or live rollouts of a model, `--model`) with one or
more rewards and summarise them, to check a reward (or a sampled batch) before spending compute on training.
`reward probe` and `reward compare` live in `rewards.lab_cli`; this module registers all three.

Input: one JSON object per line with a `completion` (a string or a list of chat messages) and the columns the
rewards read, e.g. `{"qid": "q1", "completion": "<answer>{...}</answer>", "doc_ids": [...], "labels": [...]}` for
list paradigms; pointwise rows carry `label`, `doc_id`, `ref_score` / `teacher_score`; classification rows carry
`gold_labels` and optionally `label_options` (see each reward module). An optional `prompt` is passed as prompts.
A key missing from some lines reads as None there. All lines are scored in one call per reward, so group-aware
rewards see whole queries.

Output per reward and component: count, mean, std, min, max, the share of groups (rows sharing a `qid`, two or
more values) whose values are all equal, i.e. that give GRPO no signal (at `--group-size G`: of G-row subgroups,
see `rewards.distributions`); per reward, the share of format failures (from the `format_ok` component).
`--plot DIR` writes their histograms.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .contract import FORMAT_OK, group_rows, score_with_components
from .distributions import write_plots, zero_variance_share
from .registry import get_reward

__all__ = ["read_completions", "summarize", "add_reward_parser", "run_reward_score"]


def read_completions(path: str | Path, need_completion: bool = True) -> tuple[list[Any], list[Any], dict[str, list]]:
    """(prompts, completions, columns) from a JSONL file; a malformed line raises the project's one-line
    `UserError` naming `path:line` (lines are read by `data_synthesis.readers.read_jsonl`). Without
    `need_completion` (probes build their own) a missing completion reads as None."""
    from rerank_rl.data_synthesis.readers import read_jsonl
    from rerank_rl.rl.errors import UserError, located

    records = []
    for lineno, record in read_jsonl(path):
        if need_completion and "completion" not in record:
            raise located(path, lineno, "missing the 'completion' key")
        records.append(record)
    if not records:
        raise UserError(f"{path}: no {'completions' if need_completion else 'rows'} in the file")
    keys = list(dict.fromkeys(k for r in records for k in r if k not in ("completion", "prompt")))
    columns = {key: [r.get(key) for r in records] for key in keys}
    return [r.get("prompt") for r in records], [r.get("completion") for r in records], columns


def _stats(values: Sequence[float | None], groups: dict[Any, list[int]] | None,
           group_size: int | None = None) -> dict[str, float | int | None]:
    present = [float(v) for v in values if v is not None]
    count = len(present)
    mean = sum(present) / count if count else None
    out: dict[str, float | int | None] = {
        "count": count,
        "mean": mean,
        "std": math.sqrt(sum((v - mean) ** 2 for v in present) / count) if count else None,
        "min": min(present) if count else None,
        "max": max(present) if count else None,
        "zero_variance_groups": zero_variance_share(values, groups, group_size) if groups else None,
    }
    return out


def score_series(specs: Sequence[str], prompts: list, completions: list, columns: dict[str, list]):
    """{spec: {"total": values, component: values, ...}}: every reward's per-completion values."""
    series: dict[str, dict[str, list]] = {}
    for spec in specs:
        totals, components = score_with_components(get_reward(spec), prompts, completions, **columns)
        series[spec] = {"total": totals, **components}
    return series


def summarize(specs: Sequence[str], prompts: list, completions: list, columns: dict[str, list],
              group_size: int | None = None, series: dict | None = None) -> dict[str, Any]:
    """Per reward spec: `format_failures` (share, or None) and stats of `total` and of every component
    (`series` reuses values `score_series` already computed)."""
    groups = group_rows(columns["qid"]) if "qid" in columns else None
    series = series or score_series(specs, prompts, completions, columns)
    report: dict[str, Any] = {}
    for spec, components in series.items():
        checked = [v for v in components.get(FORMAT_OK, []) if v is not None]
        report[spec] = {
            "format_failures": (1.0 - sum(checked) / len(checked)) if checked else None,
            "components": {name: _stats(values, groups, group_size) for name, values in components.items()},
        }
    return report


SPEC_HELP = "comma-separated reward specs: registered names (grouprank, ndcg@10, ...), module:function or " \
    "path/file.py:function"


def parse_specs(values: str | Sequence[str]) -> list[str]:
    """Reward specs from one comma-separated string or several (a repeated --reward)."""
    texts = [values] if isinstance(values, str) else list(values)
    specs = [s.strip() for text in texts for s in text.split(",") if s.strip()]
    if not specs:
        raise ValueError("--reward: give at least one reward spec")
    return specs


def add_reward_parser(subparsers) -> None:
    """Register `reward score`, `reward probe` and `reward compare` on the `rerank-rl` subparsers."""
    from .lab_cli import add_lab_parsers

    parser = subparsers.add_parser("reward", help="inspect rewards")
    commands = parser.add_subparsers(dest="reward_command", required=True)
    score = commands.add_parser("score", help="score completions (a JSONL file, or live rollouts of a model) and "
                                              "summarise each reward")
    score.add_argument("--reward", required=True, help=SPEC_HELP)
    score.add_argument("--input", help="JSONL file, one completion and its columns per line")
    score.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    score.add_argument("--plot", metavar="DIR", help="write a histogram PNG per reward and component, and of the "
                                                     "within-group spread, to DIR")
    score.add_argument("--group-size", type=int, metavar="G", help="zero-variance share of G-row groups, as a "
                                                                   "run sampling G rollouts per query sees it")
    live = score.add_argument_group("live rollouts (instead of --input)")
    live.add_argument("--model", help="an export folder, a Hugging Face model folder, or 'default' (the base model)")
    live.add_argument("--data", help="ranking file: ranking-schema JSONL, rank_llm JSON (with --qrels) or 'builtin'")
    live.add_argument("--qrels", help="TREC qrels for a rank_llm --data file")
    live.add_argument("--samples", type=int, default=4, help="completions per query (default 4)")
    live.add_argument("--queries", type=int, help="use the first N queries of --data")
    live.add_argument("--docs", type=int, default=10, help="candidates per prompt (default 10)")
    live.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    live.add_argument("--max-new-tokens", type=int, help="default: the paradigm's answer budget")
    live.add_argument("--variant", help="prompt variant of a plain model (default answer_only; exports bring theirs)")
    live.add_argument("--save", metavar="FILE", help="also write the rollouts as a JSONL that --input, probe and "
                                                     "compare read")
    score.set_defaults(func=run_reward_score)
    add_lab_parsers(commands)


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


def _live_rollouts(args) -> tuple[list, list, dict, dict]:
    from .rollouts import load_rollout_model, read_ranking_file, sample_rollouts

    if not args.data:
        raise ValueError("--model needs --data (a ranking file, or 'builtin')")
    for flag in ("samples", "docs", "queries", "max_new_tokens"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    model = load_rollout_model(args.model, args.variant)
    examples = read_ranking_file(args.data, args.qrels, args.queries)
    return sample_rollouts(model, examples, args.samples, docs=args.docs, temperature=args.temperature,
                           max_new_tokens=args.max_new_tokens)


def _save_rollouts(path: str, prompts: list, completions: list, columns: dict) -> None:
    with open(path, "w") as handle:
        for row, completion in enumerate(completions):
            record = {key: values[row] for key, values in columns.items()}
            handle.write(json.dumps({**record, "prompt": prompts[row], "completion": completion}) + "\n")


def run_reward_score(args) -> int:
    """Entry point of `rerank-rl reward score`. Bad input (a malformed line, an unknown reward, a missing column)
    becomes the CLI's one-line UserError, so the user sees `error: ...` and exit code 2."""
    from rerank_rl.rl.errors import UserError

    timing = None
    try:
        specs = parse_specs(args.reward)
        if bool(args.input) == bool(args.model):
            raise ValueError("give either --input FILE or --model MODEL --data FILE")
        if args.group_size is not None and args.group_size < 2:
            raise ValueError(f"--group-size must be at least 2, got {args.group_size}")
        if args.model:
            prompts, completions, columns, timing = _live_rollouts(args)
            if args.save:
                _save_rollouts(args.save, prompts, completions, columns)
        else:
            prompts, completions, columns = read_completions(args.input)
        series = score_series(specs, prompts, completions, columns)
        report = summarize(specs, prompts, completions, columns, args.group_size, series)
        plots = []
        if args.plot:
            groups = group_rows(columns["qid"]) if "qid" in columns else None
            plots = [str(p) for p in write_plots(args.plot, series, groups, args.group_size)]
    except ValueError as error:
        raise UserError(str(error)) from None
    except OSError as error:  # --save or --plot cannot write where asked
        raise UserError(f"{error.filename or 'output'}: cannot write ({error.strerror or error})") from None
    source = str(args.input or f"{args.model} on {args.data}")
    if args.json:
        print(json.dumps({"input": source, "completions": len(completions), "rewards": report,
                          **({"rollouts": timing} if timing else {}), **({"plots": plots} if plots else {})}))
        return 0
    _print_table(source, len(completions), report)
    if timing:
        print(f"sampled {timing['completions']} completions (up to {timing['max_new_tokens']} new tokens) in "
              f"{timing['generate_s']:.1f} s after {timing['load_s']:.1f} s of model loading")
    if plots:
        print(f"wrote {len(plots)} plots to {args.plot}")
    return 0
