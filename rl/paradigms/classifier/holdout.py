"""Labels kept out of training, for a zero-shot validation signal inside the training data.

Whole labels are held out (a share of a training set's labels, or a whole set): every text carrying one leaves
training, and no training example offers one as a negative. The held-out texts become validation groups, each a
zero-shot task over up to `max_labels` held-out labels, so the validation figure says how well the model reads
label names it has never met, which is what a user's new label set asks of it.
"""

from __future__ import annotations

import random

from rerank_rl.data_synthesis.classification import sample
from rerank_rl.rl.errors import UserError

from .config import DataConfig
from .data import label_names

MIN_LABELS = 4  # holding out a share of fewer labels leaves no task on one side


def held_out_labels(sets: dict[str, list[dict]], cfg: DataConfig, seed: int) -> dict[str, list[str]]:
    """{set: its held-out label names}, drawn with `seed`."""
    rng = random.Random(seed)
    held = {}
    for spec in sorted(sets):
        names = label_names(sets[spec])
        if spec in cfg.holdout_sets:
            held[spec] = names
        elif spec in cfg.holdout_labels:
            if len(names) < MIN_LABELS:
                raise UserError(f"data.holdout_labels.{spec}: the set has {len(names)} labels; holding out a share "
                                f"needs at least {MIN_LABELS} (hold the whole set out with data.holdout_sets)")
            held[spec] = sorted(rng.sample(names, max(2, round(len(names) * cfg.holdout_labels[spec]))))
    return held


def split_holdout(sets: dict[str, list[dict]], cfg: DataConfig, seed: int):
    """(training sets without any held-out label, {group name: validation rows}, {group name: test rows}).

    A held-out label string leaves every training set, wherever it occurs. A text whose gold labels are partly held
    out goes nowhere (as training it would teach that held-out gold label is wrong; as validation its other label is
    not offered). Each group offers one chunk of a set's held-out labels to the texts whose gold labels lie in it.
    Test rows are other texts of the same groups: checkpoint choice looks at the validation rows only, so the figure
    reported for the chosen model is not the maximum it was chosen for.
    """
    held = held_out_labels(sets, cfg, seed)
    out = {label.casefold() for labels in held.values() for label in labels}
    train = {}
    for spec, rows in sets.items():
        if spec in cfg.holdout_sets:
            continue
        kept = [row for row in rows if not any(g.casefold() in out for g in row["gold_labels"])]
        train[spec] = [{**row, "label_names": [n for n in row["label_names"] if n.casefold() not in out]}
                       for row in kept]
    groups, tests = {}, {}
    for spec, labels in held.items():
        chunks = _chunks(labels, cfg.max_labels)
        per_group = max(1, cfg.holdout_examples // len(chunks))
        per_test = cfg.holdout_test_examples // len(chunks)
        for i, chunk in enumerate(chunks):
            inside = set(chunk)
            rows = [{**row, "label_names": chunk} for row in sets[spec]
                    if row["gold_labels"] and set(row["gold_labels"]) <= inside]
            if _classes(rows) >= 2:  # a one-class group measures nothing
                # A group with few texts (DL21's judged passages) gives its test half of them, not the leftovers.
                take = min(per_group, max(1, len(rows) // 2)) if per_test else per_group
                groups[f"{spec}#{i + 1}"] = validation = sample(rows, take, seed)
                chosen = {id(row) for row in validation}
                test = sample([row for row in rows if id(row) not in chosen], per_test, seed + 1) if per_test else []
                if _classes(test) >= 2:
                    tests[f"{spec}#{i + 1}"] = test
    return train, groups, tests


def _classes(rows: list[dict]) -> int:
    return len({g for row in rows for g in row["gold_labels"]})


def _chunks(labels: list[str], size: int) -> list[list[str]]:
    """Even chunks of at most `size` labels (9 labels in chunks of 8 give 5 + 4, not 8 + 1)."""
    count = -(-len(labels) // size)
    return [labels[i::count] for i in range(count)]


def group_set(group: str) -> str:
    """The training set a validation group was drawn from (`banking77:train#2` -> `banking77:train`)."""
    return group.rpartition("#")[0] or group
