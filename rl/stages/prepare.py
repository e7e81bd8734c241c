"""The data stage of a reranker recipe: read the sources, cut training groups, keep the evaluation set."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rerank_rl.data_synthesis.groups import grade_mix, sample_groups
from rerank_rl.data_synthesis.schema import ranking_dataset
from rerank_rl.data_synthesis.sources import load_source
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms import get_paradigm


def _locate(source, run_dir: Path):
    """`format: synthesized` reads the pools this run's synthesize stage wrote."""
    if source.format != "synthesized":
        return source
    path = run_dir / "synthesis" / "pools"
    if not path.exists():
        raise UserError(f"data source 'synthesized' needs a `synthesize:` section in the recipe ({path} is missing)")
    return dataclasses.replace(source, format="dataset", path=str(path))


def prepare_data(config, run_dir: Path) -> dict:
    """Write run_dir/data/{train_groups, eval} as datasets and return their sizes."""
    out = run_dir / "data"
    train = [ex for source in config.data.train for ex in load_source(_locate(source, run_dir))]
    train = [ex for ex in train if max(ex["labels"], default=0) > 0]  # a group with nothing relevant teaches nothing
    if not train:
        raise UserError("data.train: no query with a relevant candidate (check the qrels and depth)")
    groups = sample_groups(train, config.data.group_sizes, config.data.groups_per_query, seed=config.data.seed,
                           mixed_fraction=config.data.mixed_fraction)
    # the paradigm's training units: groups as they are, or (pointwise) one unit per passage
    groups = get_paradigm(config.paradigm).training_units(groups)
    from datasets import Dataset

    if any("teacher_scores" in g for g in groups):  # from_list takes its columns from the first row
        for g in groups:
            g.setdefault("teacher_scores", None)
    Dataset.from_list(groups).save_to_disk(str(out / "train_groups"))
    eval_examples = load_source(_locate(config.data.eval, run_dir))
    ranking_dataset(eval_examples).save_to_disk(str(out / "eval"))
    sizes = {"train_queries": len(train), "train_groups": len(groups), "eval_queries": len(eval_examples),
             "train_mix": grade_mix(groups)}
    (out / "sizes.json").write_text(json.dumps(sizes, indent=2))
    return sizes
