"""The `rerank-rl` command line. Each subcommand is a thin shell over a stage or library function.

User mistakes surface as `error: <one line>` with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from rerank_rl.rl import _env  # noqa: F401
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.serve.cli import add_serve_parser


def _add_model_parser(sub) -> None:
    p = sub.add_parser("model", help="prepare the embedded default models in the cache")
    msub = p.add_subparsers(dest="model_command", required=True)
    prep = msub.add_parser("prepare", help="build the dense SmolLM2 checkpoint and locate the MiniLM encoder")
    prep.add_argument("--force", action="store_true", help="rebuild even if the cache holds it")
    prep.set_defaults(func=_run_model_prepare)


def _run_model_prepare(args) -> int:
    from rerank_rl.rl.models import default_encoder_path, prepare_default_lm

    print(f"smollm2-135m-instruct: {prepare_default_lm(force=args.force)}")
    print(f"minilm: {default_encoder_path()}")
    return 0


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a first-stage ranking, or rerank it with a trained model")
    p.add_argument("--candidates", help="rank_llm retrieve_results JSON, or a TREC run (first stage only)")
    p.add_argument("--qrels", help="TREC qrels file")
    p.add_argument("--first-stage", action="store_true", help="score the candidates in their given order")
    p.add_argument("--model", help="exported model folder (from `rerank-rl export`)")
    p.add_argument("--paradigm", help="paradigm of --model (groupwise, setwise, pointwise, multimodal), or classifier "
                   "for a classifier export")
    p.add_argument("--depth", type=int, help="rerank only the top DEPTH candidates of each query")
    p.add_argument("--rel-level", type=int, help="minimum grade that counts as relevant for binary measures "
                   "(default: 2 for graded 0-3 qrels as in TREC DL, else 1)")
    p.add_argument("--run-out", help="write the (re)ranked TREC run here")
    p.add_argument("--window", type=int, help="documents per prompt (default: the export's setting)")
    p.add_argument("--stride", type=int, help="step between windows (default: the export's setting)")
    p.add_argument("--batch-size", type=int, help="prompts decoded together (default: the export's setting)")
    p.add_argument("--scoring", choices=("expected", "greedy"),
                   help="expected: each passage's expected 0-10 score from the answer distribution; greedy: decode "
                        "and parse the answer (default: the export's setting)")
    p.add_argument("--fusion", type=_fusion_weight, metavar="WEIGHT|none",
                   help="weight of the reranker score when fused with the first stage, or none for no fusion "
                   "(default: the export's setting)")
    p.add_argument("--max-queries", type=int, help="evaluate only the first N queries (quick checks)")
    p.add_argument("--data", help="classifier: a classification file (CSV/TSV/JSONL) to evaluate on")
    p.add_argument("--labels", help="classifier: comma-separated candidate labels")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_run_evaluate)


def _fusion_weight(text: str) -> float | str:
    """`--fusion`: a weight, or "none" (kept apart from an absent option, which means the export's own weight)."""
    if text.strip().lower() == "none":
        return "none"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a weight or none, got {text!r}") from None


def _run_evaluate(args) -> int:
    if args.paradigm == "classifier":
        from rerank_rl.rl.paradigms.classifier.cli import run_classifier_evaluate

        return run_classifier_evaluate(args)
    from rerank_rl.rl.evaluate import evaluate_command

    return evaluate_command(args)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="run a recipe: synthesize -> sft -> rl -> evaluate -> export")
    p.add_argument("config", nargs="?", help="recipe YAML (default: configs/grouprank.yaml)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set rl.max_steps=4 sft.enabled=false (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--output-dir", help="run folder (default: runs/<recipe>-<timestamp>)")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from rerank_rl.rl.pipeline import train_command

    return train_command(args)


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run's checkpoint and serving bundle")
    p.add_argument("run_dir")
    p.add_argument("--out", help="export folder (default: RUN_DIR/export)")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    from rerank_rl.rl.pipeline import export_command

    return export_command(args)


def _add_package_parsers(sub) -> None:
    """Subcommands that live in the other packages."""
    from rerank_rl.data_synthesis.cli import add_synthesize_parser
    from rerank_rl.rewards.cli import add_reward_parser

    add_reward_parser(sub)
    add_synthesize_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-rl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_export_parser(sub)
    _add_model_parser(sub)
    add_serve_parser(sub)
    _add_package_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rerank-rl ... | head`: the reader left; exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
