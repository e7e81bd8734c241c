"""Training and evaluation data for the classifier: which sets, how many examples, which labels each one offers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from rerank_rl.data_synthesis.classification import read_named, read_unlabeled, sample
from rerank_rl.data_synthesis.label_corpus import label_variant
from rerank_rl.rl.errors import UserError

from .config import DataConfig

REPO = Path(__file__).resolve().parents[3]


def data_root(cfg: DataConfig) -> Path:
    root = Path(cfg.root).expanduser() if cfg.root else REPO.parent / "shared" / "data"
    if not root.is_dir():
        raise UserError(f"data root {root} does not exist (set data.root)")
    return root


def load_sets(specs: list[str], root: Path, per_set: int | None, seed: int) -> dict[str, list[dict]]:
    """{spec: seeded sample of its examples}, read through the classification readers."""
    return {spec: sample(read_named(spec, root), per_set, seed) for spec in specs}


def load_eval_sets(cfg: DataConfig, root: Path, seed: int) -> dict[str, list[dict]]:
    """The evaluation sample of a run with `seed`: drawn with seed + 1, apart from the training sample."""
    return load_sets(cfg.eval, root, cfg.eval_examples, seed + 1)


def load_unlabeled(specs: list[str], root: Path, per_set: int | None, seed: int) -> list[dict]:
    """Seeded samples of each unlabeled corpus, pooled into one training set."""
    return [row for spec in specs for row in sample(read_unlabeled(spec, root), per_set, seed)]


def open_vocabulary(sets: dict[str, list[dict]], min_df: int, max_df: float) -> list[str]:
    """Content words of the training texts (no stop words, no training label names), in sorted order: names the
    teacher can score against any text, none of which is a training label name."""
    from sklearn.feature_extraction.text import CountVectorizer

    texts = [row["text"] for rows in sets.values() for row in rows]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{4,}\b",
                                 min_df=min_df, max_df=max_df)
    try:
        vectorizer.fit(texts)
    except ValueError:  # every word filtered out (tiny or uniform sets)
        return []
    taken = {label.casefold() for rows in sets.values() for label in label_names(rows)}
    return [word for word in vectorizer.get_feature_names_out() if word not in taken]


def label_names(rows: list[dict]) -> list[str]:
    """The label set of a dataset, in its own order."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row["label_names"]))
    return list(names)


@dataclass
class Batch:
    texts: list[str]
    labels: list[list[str]]  # offered labels per text, in the order the model sees them
    targets: torch.Tensor  # (B, K) 1.0 for a gold label, 0.0 otherwise (padded slots 0)
    known: torch.Tensor  # (B, K) True where the target is known (not an open-vocabulary label, not padding)


class LabelSetSampler:
    """Draws training examples with a varied label set each time.

    Each example offers its gold label(s), a random number of negatives from its own set, and `other_negatives`
    negatives from the other training sets' labels (so the model learns to reject labels of an unrelated task,
    as it must when a user offers arbitrary labels). Sets are drawn uniformly, so a large set does not dominate;
    with `balance_labels`, so are the gold labels within a set. With a `vocabulary`, each example also offers
    `cfg.vocab_labels` of its words, whose targets are unknown (`Batch.known` is False there). A set of unlabeled
    texts (empty label lists) offers `cfg.max_labels` vocabulary words and nothing else. With `cfg.label_variants`,
    a label of a classification set (one label list for all its texts; not a query of a ranking set) is shown as a
    template phrase or with its description that often. `seen` and `seen_open` collect every label string offered
    with a target and without one.
    """

    def __init__(self, sets: dict[str, list[dict]], cfg: DataConfig, seed: int, vocabulary: list[str] = ()):
        self.sets = {name: rows for name, rows in sets.items() if rows}
        if not self.sets:
            raise UserError("no training examples: every training set is empty")
        self.own = {name: label_names(rows) for name, rows in self.sets.items()}
        unlabeled = [name for name, labels in self.own.items() if not labels]
        if unlabeled and not (vocabulary and cfg.vocab_labels):
            raise UserError(f"training set {unlabeled[0]!r} has no labels: unlabeled texts need data.vocab_labels")
        self.others = {name: self._others(name) for name in self.sets}  # fixed per set: built once, not per draw
        # With balance_labels: per set, (label, its texts) pairs in a fixed order to draw from.
        self.by_gold = {name: self._by_gold(rows) for name, rows in self.sets.items()} if cfg.balance_labels else {}
        self.cfg = cfg
        self.vocabulary = list(vocabulary)
        self.rng = random.Random(seed)
        # Labels that may be shown as variants: those of sets whose texts all offer one label list.
        self.nameable = {label for name, rows in self.sets.items() if rows[0]["label_names"]
                         and all(row["label_names"] == rows[0]["label_names"] for row in rows)
                         for label in self.own[name]}
        self.seen: set[str] = set()
        self.seen_open: set[str] = set()

    @staticmethod
    def _by_gold(rows: list[dict]) -> list[list[dict]]:
        index: dict[str, list[dict]] = {}
        for row in rows:
            for label in dict.fromkeys(row["gold_labels"]):
                index.setdefault(label, []).append(row)
        return [index[label] for label in sorted(index)]

    def _others(self, name: str) -> list[str]:
        own = {label.lower() for label in self.own[name]}
        pool = {label for other, labels in self.own.items() if other != name for label in labels}
        return sorted(label for label in pool if label.lower() not in own)

    def example(self) -> tuple[str, list[str], set[str], set[str]]:
        """(text, offered labels, gold labels, open-vocabulary labels)."""
        name = self.rng.choice(sorted(self.sets))
        pool = self.rng.choice(self.by_gold[name]) if self.by_gold.get(name) else self.sets[name]
        row = self.rng.choice(pool)
        if not row["label_names"]:  # an unlabeled text: the teacher alone scores its (vocabulary) labels
            words = self.rng.sample(self.vocabulary, min(self.cfg.max_labels, len(self.vocabulary)))
            self.seen_open.update(words)
            return row["text"], words, set(), set(words)
        gold = list(dict.fromkeys(row["gold_labels"]))
        others = self.rng.sample(self.others[name], min(self.cfg.other_negatives, len(self.others[name])))
        room = max(0, self.cfg.max_labels - len(gold) - len(others))
        own_pool = [label for label in self.own[name] if label not in gold]
        # A random count of own-set negatives, so the model meets label sets of many sizes.
        count = self.rng.randint(min(1, room, len(own_pool)), min(room, len(own_pool)))
        labels = gold + self.rng.sample(own_pool, count) + others
        open_labels = []
        if self.vocabulary and self.cfg.vocab_labels:
            open_labels = self.rng.sample(self.vocabulary, min(self.cfg.vocab_labels, len(self.vocabulary)))
            open_labels = [word for word in open_labels if word not in labels]
        if self.cfg.label_variants:
            shown = {label: self._variant(label) for label in labels}
            labels, gold = [shown[label] for label in labels], [shown[label] for label in gold]
        self.seen.update(labels)
        self.seen_open.update(open_labels)
        labels += open_labels
        if self.cfg.shuffle_labels:
            self.rng.shuffle(labels)
        return row["text"], labels, set(gold), set(open_labels)

    def _variant(self, label: str) -> str:
        if label in self.nameable and self.rng.random() < self.cfg.label_variants:
            return label_variant(label, self.rng)
        return label

    def batch(self, size: int) -> Batch:
        drawn = [self.example() for _ in range(size)]
        width = max(len(labels) for _, labels, _, _ in drawn)
        targets = torch.zeros(size, width)
        known = torch.zeros(size, width, dtype=torch.bool)
        for i, (_, labels, gold, open_labels) in enumerate(drawn):
            for j, label in enumerate(labels):
                targets[i, j] = float(label in gold)
                known[i, j] = label not in open_labels
        return Batch([t for t, *_ in drawn], [labels for _, labels, *_ in drawn], targets, known)

    def state(self) -> dict:
        return {"rng": self.rng.getstate(), "seen": sorted(self.seen), "seen_open": sorted(self.seen_open)}

    def restore(self, state: dict) -> None:
        self.rng.setstate(state["rng"])
        self.seen, self.seen_open = set(state["seen"]), set(state["seen_open"])

    def distinct_labels(self) -> dict[str, int]:
        """How many distinct label strings training offered: with a target, and open-vocabulary (teacher only)."""
        return {"with_target": len(self.seen), "open_vocabulary": len(self.seen_open)}
