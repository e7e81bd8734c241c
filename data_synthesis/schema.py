"""The two example schemas every reader produces and every stage consumes, as Hugging Face `datasets`.

Ranking example (one query with its candidate list):
    qid                 str
    query               str
    doc_ids             list[str]    candidates in first-stage order (best first)
    doc_texts           list[str]    aligned with doc_ids
    first_stage_scores  list[float]  aligned with doc_ids (higher is better)
    labels              list[int]    graded gold relevance aligned with doc_ids; 0 for unjudged
  optional:
    teacher_scores      list[float]  a teacher's 0-10 score per candidate, aligned with doc_ids (the encoder
                                     teacher writes it; data_synthesis/encoder_labels.py says how it is spread)

Classification example:
    text                str
    label_names         list[str]    the candidate labels offered to the model
    gold_labels         list[str]    the subset of label_names that is correct
"""

from __future__ import annotations

from collections.abc import Iterable

from datasets import Dataset, Features, Sequence, Value

RANKING_FEATURES = Features(
    {
        "qid": Value("string"),
        "query": Value("string"),
        "doc_ids": Sequence(Value("string")),
        "doc_texts": Sequence(Value("string")),
        "first_stage_scores": Sequence(Value("float32")),
        "labels": Sequence(Value("int32")),
    }
)

TEACHER_SCORES_FEATURE = {"teacher_scores": Sequence(Value("float32"))}
RANKING_WITH_TEACHER_FEATURES = Features({**RANKING_FEATURES, **TEACHER_SCORES_FEATURE})

CLASSIFICATION_FEATURES = Features(
    {
        "text": Value("string"),
        "label_names": Sequence(Value("string")),
        "gold_labels": Sequence(Value("string")),
    }
)

_RANKING_LISTS = ("doc_ids", "doc_texts", "first_stage_scores", "labels")


def check_ranking_example(example: dict, where: str = "example") -> None:
    """Raise ValueError naming `where` when the aligned lists disagree or a doc id repeats."""
    missing = [key for key in ("qid", "query", *_RANKING_LISTS) if key not in example]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    n = len(example["doc_ids"])
    for key in (*_RANKING_LISTS[1:], *(k for k in TEACHER_SCORES_FEATURE if example.get(k) is not None)):
        if len(example[key]) != n:
            raise ValueError(f"{where}: '{key}' has {len(example[key])} entries but 'doc_ids' has {n}")
    if len(set(example["doc_ids"])) != n:
        seen: set[str] = set()
        dup = next(d for d in example["doc_ids"] if d in seen or seen.add(d))
        raise ValueError(f"{where}: doc id {dup!r} appears twice in query {example['qid']!r}")


def ranking_dataset(examples: Iterable[dict]) -> Dataset:
    """Validate ranking examples and pack them into a Dataset with RANKING_FEATURES, plus `teacher_scores` when
    every example has them (a mix of scored and unscored examples keeps the base columns only)."""
    rows = list(examples)
    for i, row in enumerate(rows):
        check_ranking_example(row, where=f"example {i} (qid {row.get('qid')!r})")
    scored = bool(rows) and all(row.get("teacher_scores") is not None for row in rows)
    features = RANKING_WITH_TEACHER_FEATURES if scored else RANKING_FEATURES
    columns = {key: [row[key] for row in rows] for key in features}
    return Dataset.from_dict(columns, features=features)


def classification_dataset(examples: Iterable[dict]) -> Dataset:
    """Validate classification examples (gold labels must be offered) and pack them into a Dataset."""
    rows = list(examples)
    for i, row in enumerate(rows):
        unknown = set(row["gold_labels"]) - set(row["label_names"])
        if unknown:
            raise ValueError(f"example {i}: gold label(s) {sorted(unknown)} not among label_names")
    columns = {key: [row[key] for row in rows] for key in CLASSIFICATION_FEATURES}
    return Dataset.from_dict(columns, features=CLASSIFICATION_FEATURES)
