"""`rerank-rl reward probe` (can the reward be gamed?) and `rerank-rl reward compare` (do two rewards agree, and
with nDCG@10?). Registered under `reward` by `rewards.cli.add_reward_parser`."""

from __future__ import annotations

import json
from typing import Any

from .agreement import compare_rewards
from .cli import SPEC_HELP, _fmt, parse_specs, read_completions
from .probes import PROBES, BadRow, list_formats
from .probing import probe_reward
from .registry import get_reward

__all__ = ["add_lab_parsers", "run_reward_probe", "run_reward_compare"]


def add_lab_parsers(commands) -> None:
    probe = commands.add_parser("probe", help="score hacking probes (constant, copied order, padding, ...) "
                                              "against the gold answers of a labelled file")
    probe.add_argument("--reward", required=True, help=SPEC_HELP)
    probe.add_argument("--input", required=True, help="JSONL with the columns the rewards read (labels, qid, ...); "
                                                      "completions, if any, are ignored")
    probe.add_argument("--format", choices=list_formats(), help="output format to probe (default: the reward's own, "
                                                                "else the groupwise paradigm's)")
    probe.add_argument("--tags", help="comma-separated tags the answers use, the answer tag last (default: the "
                                      "reward's own, else the format's)")
    probe.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    probe.set_defaults(func=run_reward_probe)

    compare = commands.add_parser("compare", help="rank correlation of rewards over the same completions, and of "
                                                  "each with nDCG@10 of the labels")
    compare.add_argument("--reward", required=True, action="append", help=SPEC_HELP + " (repeat or list two+)")
    compare.add_argument("--input", required=True, help="JSONL file, one completion and its columns per line")
    compare.add_argument("--metric", default="ndcg@10", help="reference metric spec (default ndcg@10)")
    compare.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    compare.set_defaults(func=run_reward_compare)


def _console():
    from rich.console import Console

    console = Console()
    console.width = max(console.width, 120)  # pipes default to 80 columns
    return console


def _print_probes(path: str, report: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    for spec, entry in report.items():
        table = Table(title=f"{spec} on {path}: {entry['rows']} gold answers, format {entry['format']}, "
                            f"tags {','.join(entry['tags'])}")
        for header in ("probe", "above gold", "ties gold", "below gold", "mean gap", "verdict"):
            table.add_column(header, justify="left" if header in ("probe", "verdict") else "right")
        for name, rates in entry["probes"].items():
            if rates is None or not rates["pairs"]:
                table.add_row(name, "-", "-", "-", "-", "n/a")
                continue
            verdict = "BEATS GOLD" if name in entry["flagged"] else ("ties" if rates["tie_rate"] == 1 else "ok")
            table.add_row(name, *(_fmt(rates[k]) for k in ("above_gold_rate", "tie_rate", "below_gold_rate",
                                                           "mean_gap")), verdict)
        console.print(table)
        flagged = ", ".join(entry["flagged"]) or "none"
        console.print(f"{spec}: flagged by {flagged}")


def _line_of(path: str, row: int) -> int | None:
    """File line of the `row`-th object (blank lines are skipped by the reader); only read on the error path."""
    from rerank_rl.data_synthesis.readers import read_jsonl

    return next((lineno for i, (lineno, _) in enumerate(read_jsonl(path)) if i == row), None)


def run_reward_probe(args) -> int:
    from rerank_rl.rl.errors import UserError, located

    try:
        specs = parse_specs(args.reward)
        tags = [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags else None
        _, _, columns = read_completions(args.input, need_completion=False)
        size = len(next(iter(columns.values()), []))
        report = {spec: probe_reward(get_reward(spec), columns, size, args.format, tags) for spec in specs}
    except BadRow as error:
        raise located(args.input, _line_of(args.input, error.row), str(error)) from None
    except ValueError as error:
        raise UserError(f"reward probe on {args.input}: {error}") from None
    if args.json:
        print(json.dumps({"input": str(args.input), "probes": list(PROBES), "rewards": report}))
    else:
        _print_probes(str(args.input), report)
    return 0


def _print_agreement(path: str, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{path}: rank correlation")
    for header in ("rewards", "rows", "spearman", "kendall", "within-qid spearman", "qid groups"):
        table.add_column(header, justify="left" if header == "rewards" else "right")
    rows = [*report["pairs"].items(), *((f"{spec} vs {report['reference']}", c)
                                        for spec, c in report["vs_reference"].items())]
    for name, c in rows:
        table.add_row(name, str(c["rows"]), _fmt(c["spearman"]), _fmt(c["kendall"]), _fmt(c["within_group_spearman"]),
                      str(c["groups"]))
    _console().print(table)


def run_reward_compare(args) -> int:
    from rerank_rl.rl.errors import UserError

    try:
        specs = list(dict.fromkeys(parse_specs(args.reward)))
        prompts, completions, columns = read_completions(args.input)
        named = {spec: get_reward(spec) for spec in specs}
        report = compare_rewards(named, (args.metric, get_reward(args.metric)), prompts, completions, columns)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.json:
        print(json.dumps({"input": str(args.input), "completions": len(completions), **report}))
    else:
        _print_agreement(str(args.input), report)
    return 0
