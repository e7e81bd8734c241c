"""`rerank-rl synthesize CONFIG [--set k=v ...]`: run the synthesis stage alone."""


def add_synthesize_parser(sub) -> None:
    p = sub.add_parser("synthesize", help="build candidate pools, teacher labels and SFT data")
    p.add_argument("config", help="synthesis or recipe YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--output-dir", help="where the datasets and summary.json go")
    p.set_defaults(func=run_synthesize)


def run_synthesize(args) -> int:
    from rerank_rl.data_synthesis.stage import synthesize_command

    return synthesize_command(args)
