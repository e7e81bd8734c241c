"""Hacking probes: from each labelled row, completions a reward must not prefer to the gold answer.

A probe is built from per-document 0-10 scores (the gold scores, a constant, the first-stage order, the reverse)
and rendered in one paradigm's output format, or is a format-specific variant of the gold answer (the right
scores in the wrong syntax, a partial answer, padding). Formats register here by the name their parser has in
`rewards.formats.PARSERS` ("scores", "permutation", "choice", "grade"); a paradigm names its format in its module
(`ANSWER_FORMAT`), and built-in rewards in their class (`answer_format`), so a new paradigm adds a `ProbeFormat`
subclass with `@register_format` and every probe applies to it, without touching the command line.

The gold answer of a document is its label mapped onto 0-10 (`10 * label / max label of the file`). A probe a
format cannot express (an empty reasoning without a reasoning tag, a constant "score" for a single choice) is None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .contract import column, group_rows

__all__ = ["BadRow", "Unit", "ProbeFormat", "register_format", "get_format", "list_formats", "PROBES", "build_probes"]

CONSTANT = 5.0
REPEATS = 4  # how many times the padding probe repeats the reasoning and the answer's entries
EXTRA_IDS = 5


class BadRow(ValueError):
    """A row whose gold cannot be read; `row` is its 0-based index, for the caller to turn into a file line."""

    def __init__(self, row: int, message: str):
        super().__init__(message)
        self.row = row


def _grades(value, row: int, name: str) -> list[float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        return [float(x) for x in values if not isinstance(x, bool)] if values else []
    except (TypeError, ValueError):
        raise BadRow(row, f"{name!r} must hold numbers, got {value!r}") from None


@dataclass
class Unit:
    """What one prompt answers: the file `rows` holding its completions (one for list formats, one per document
    for pointwise), the documents' gold labels in prompt order and, when the file has them, their texts."""

    rows: list[int]
    labels: list[float]
    texts: list[str] | None


class ProbeFormat:
    """How one output format writes an answer. Subclasses give `units`, `answers` and the format's own variants;
    each returns one answer body per row of the unit (the text between the answer tags), or None if n/a."""

    name = ""
    tags: tuple[str, ...] = ("think", "answer")

    def units(self, columns: dict, size: int) -> list[Unit]:
        """One unit per labelled row, the first row of each `qid` when there is one (rollouts repeat a prompt)."""
        labels = column(columns, "labels", size, f"probes:{self.name}")
        texts = columns.get("doc_texts") or [None] * size
        keys = columns.get("qid") or list(range(size))
        units = []
        for rows in group_rows(keys).values():
            row = next((r for r in rows if labels[r] is not None), None)
            if row is not None and len(labels[row]):
                units.append(Unit([row], _grades(labels[row], row, "labels"), texts[row]))
        return units

    def answers(self, unit: Unit, scores: Sequence[float]) -> list[str]:
        raise NotImplementedError

    def misformatted(self, unit: Unit, scores: Sequence[float]) -> list[str] | None:
        return None

    def partial(self, unit: Unit, scores: Sequence[float]) -> list[str] | None:
        return None

    def repeated(self, unit: Unit, scores: Sequence[float]) -> list[str] | None:
        return None

    def extra_ids(self, unit: Unit, scores: Sequence[float]) -> list[str] | None:
        return None


_FORMATS: dict[str, type[ProbeFormat]] = {}


def register_format(cls: type[ProbeFormat]) -> type[ProbeFormat]:
    _FORMATS[cls.name] = cls
    return cls


def get_format(name: str) -> ProbeFormat:
    if name not in _FORMATS:
        raise ValueError(f"no probes for the output format {name!r} (known: {', '.join(list_formats())})")
    return _FORMATS[name]()


def list_formats() -> list[str]:
    return sorted(_FORMATS)


def _ranked(scores: Sequence[float]) -> list[int]:
    """1-based ids by score, best first, ties in prompt order."""
    return [i + 1 for i in sorted(range(len(scores)), key=lambda i: -scores[i])]


def _score_text(value: float) -> str:
    return str(int(round(value)))


@register_format
class Scores(ProbeFormat):
    """Groupwise: `{"[1]": 7, "[2]": 0}`."""

    name, tags = "scores", ("reason", "answer")

    @staticmethod
    def _json(pairs: Sequence[tuple[int, float]]) -> str:
        return "{" + ", ".join(f'"[{i}]": {_score_text(s)}' for i, s in pairs) + "}"

    def answers(self, unit, scores):
        return [self._json(list(enumerate(scores, 1)))]

    def misformatted(self, unit, scores):
        return ["; ".join(f"Passage {i}: {_score_text(s)} points" for i, s in enumerate(scores, 1))]

    def partial(self, unit, scores):
        half = list(enumerate(scores, 1))[: max(1, len(scores) // 2)]
        return [self._json(half)]

    def repeated(self, unit, scores):
        return [self._json(list(enumerate(scores, 1)) * REPEATS)]

    def extra_ids(self, unit, scores):
        n = len(scores)
        return [self._json([*enumerate(scores, 1), *((n + j, 0.0) for j in range(1, EXTRA_IDS + 1))])]


@register_format
class Permutation(ProbeFormat):
    """Listwise: `[3] > [1] > [2]`."""

    name = "permutation"

    @staticmethod
    def _chain(ids: Sequence[int]) -> str:
        return " > ".join(f"[{i}]" for i in ids)

    def answers(self, unit, scores):
        return [self._chain(_ranked(scores))]

    def misformatted(self, unit, scores):
        return [", ".join(str(i) for i in _ranked(scores))]

    def partial(self, unit, scores):
        ids = _ranked(scores)
        return [self._chain(ids[: max(1, len(ids) // 2)])]

    def repeated(self, unit, scores):
        return [self._chain(_ranked(scores) * REPEATS)]

    def extra_ids(self, unit, scores):
        n = len(scores)
        return [self._chain([*_ranked(scores), *range(n + 1, n + EXTRA_IDS + 1)])]


@register_format
class Choice(ProbeFormat):
    """Setwise: `[k]`, the one most relevant candidate. A partial answer has no meaning for one id."""

    name = "choice"

    def answers(self, unit, scores):
        return [f"[{_ranked(scores)[0]}]"]

    def misformatted(self, unit, scores):
        return [str(_ranked(scores)[0])]

    def repeated(self, unit, scores):
        return [" ".join([f"[{_ranked(scores)[0]}]"] * REPEATS)]

    def extra_ids(self, unit, scores):
        return [f"[{_ranked(scores)[0]}], [{len(scores) + 1}]"]


@register_format
class Grade(ProbeFormat):
    """Pointwise: one row per (query, document) with `label`, answer `7`. A unit is a query: its rows in file
    order, which is taken as the first-stage order (`first_stage_score`, when present, orders them instead)."""

    name = "grade"

    def units(self, columns, size):
        labels = column(columns, "label", size, f"probes:{self.name}")
        keys = column(columns, "qid", size, f"probes:{self.name}")
        first = columns.get("first_stage_score")
        texts = columns.get("doc_text")
        units = []
        for rows in group_rows(keys).values():
            rows = [r for r in rows if labels[r] is not None]
            if first is not None and all(first[r] is not None for r in rows):
                rows.sort(key=lambda r: -float(first[r]))
            if rows:
                grades = [_grades(labels[r], r, "label")[0] for r in rows]
                units.append(Unit(rows, grades, [texts[r] for r in rows] if texts else None))
        return units

    def answers(self, unit, scores):
        return [_score_text(s) for s in scores]

    def misformatted(self, unit, scores):
        return [f"{_score_text(s)}/10" for s in scores]

    def partial(self, unit, scores):
        """The first half of the query's documents answered, the rest left empty (a cut-off batch)."""
        half = max(1, len(scores) // 2)
        return [_score_text(s) if i < half else "" for i, s in enumerate(scores)]

    def repeated(self, unit, scores):
        return [" ".join([_score_text(s)] * REPEATS) for s in scores]

    def copied_texts(self, unit: Unit) -> list[str] | None:
        return [t or "" for t in unit.texts] if unit.texts else None


def _wrap(tags: Sequence[str], reasoning: str | None, body: str) -> str:
    """`<reason>…</reason>\n<answer>…</answer>` with the reward's tags (the last one holds the answer)."""
    *before, answer = tags
    head = "".join(f"<{t}>{reasoning or ''}</{t}>\n" for t in before)
    return f"{head}<{answer}>{body}</{answer}>"


GOLD_REASONING = "The passages that state the answer come first; related ones next; the rest do not help."

# A probe: (format, unit, gold scores, has reasoning) -> (reasoning per row or one for all, answer bodies) or None.
Probe = Callable[[ProbeFormat, Unit, list[float], bool], "tuple[str | list[str], list[str] | None] | None"]


def _first_stage(n: int) -> list[float]:
    return [10.0 * (n - 1 - i) / max(1, n - 1) for i in range(n)]


def _copied(fmt: ProbeFormat, unit: Unit) -> str | list[str] | None:
    if isinstance(fmt, Grade):
        return fmt.copied_texts(unit)
    return " ".join(unit.texts) if unit.texts else None


PROBES: dict[str, Probe] = {
    "constant": lambda f, u, g, r: (GOLD_REASONING, f.answers(u, [CONSTANT] * len(g))),
    "first_stage": lambda f, u, g, r: (GOLD_REASONING, f.answers(u, _first_stage(len(g)))),
    "reverse": lambda f, u, g, r: (GOLD_REASONING, f.answers(u, [10.0 - s for s in g])),
    "wrong_format": lambda f, u, g, r: (GOLD_REASONING, f.misformatted(u, g)),
    "partial": lambda f, u, g, r: (GOLD_REASONING, f.partial(u, g)),
    "repeated": lambda f, u, g, r: (" ".join([GOLD_REASONING] * REPEATS), f.repeated(u, g)),
    "extra_ids": lambda f, u, g, r: (GOLD_REASONING, f.extra_ids(u, g)),
    "empty_reasoning": lambda f, u, g, r: ("", f.answers(u, g)) if r else None,
    "copied_reasoning": lambda f, u, g, r: (_copied(f, u), f.answers(u, g)) if r and _copied(f, u) else None,
}


def gold_scores(labels: Sequence[float], max_label: float) -> list[float]:
    return [10.0 * max(0.0, x) / max_label for x in labels]


def build_probes(
    fmt: ProbeFormat, columns: dict, size: int, tags: Sequence[str] | None = None
) -> tuple[list[int], list[str], dict[str, list[str] | None]]:
    """(rows, gold completions, {probe: completions or None}), completions aligned with `rows` (file rows).
    `tags` are the reward's (default: the format's); with a single tag there is no reasoning to probe."""
    tags = tuple(tags or fmt.tags)
    units = fmt.units(columns, size)
    if not units:
        raise ValueError(f"no labelled rows to build {fmt.name!r} probes from")
    max_label = max(max(u.labels) for u in units) or 1.0
    reasoned = len(tags) > 1
    rows = [r for u in units for r in u.rows]
    gold: list[str] = []
    built: dict[str, list[str] | None] = {name: [] for name in PROBES}
    for unit in units:
        scores = gold_scores(unit.labels, max_label)
        gold += [_wrap(tags, GOLD_REASONING if reasoned else None, b) for b in fmt.answers(unit, scores)]
        for name, probe in PROBES.items():
            made = probe(fmt, unit, scores, reasoned)
            if built[name] is None or made is None or made[1] is None:
                built[name] = None  # the format cannot express it (for every unit alike)
                continue
            reasoning, bodies = made
            notes = reasoning if isinstance(reasoning, list) else [reasoning] * len(bodies)
            built[name] += [_wrap(tags, note if reasoned else None, b) for note, b in zip(notes, bodies)]
    return rows, gold, built
