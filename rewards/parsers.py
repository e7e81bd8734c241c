"""Parsers for every paradigm's model output. None of them raises, whatever the text: rewards turn a failed
parse into the method's penalty, and a training run never dies on a strange completion.

Each parser returns a `Parsed` with three flags, from lenient to strict:

* `ok`        a usable value was recovered (possibly by repair or by a fallback pattern);
* `tags_ok`   the required tags are each present exactly once, closed, in order, with nothing but whitespace after
              the last closing tag (text before the first tag is allowed, so prompts may prefill `<think>`);
* `format_ok` `tags_ok`, `ok`, and the answer needed no repair or fallback.

Tag names are matched case-sensitively for `tags_ok`; extraction (`answer_span`) is lenient and case-insensitive.
Ids in answers are 1-based prompt positions (`[i]` is the i-th candidate); parsers do not know the list length, so
range checks belong to the rewards.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = [
    "Parsed",
    "check_tags",
    "answer_span",
    "parse_scores",
    "parse_choice",
    "parse_grade",
    "parse_permutation",
    "parse_labels",
]


class Parsed(NamedTuple):
    """A parser's result: the value (None when nothing usable was found) and the three format flags.
    (A named tuple rather than a dataclass: it is built once per completion, and cheaply.)"""

    value: Any = None
    ok: bool = False
    tags_ok: bool = False
    format_ok: bool = False


def check_tags(text: str, tags: Sequence[str] = ("think", "answer")) -> bool:
    """True when each tag appears once as `<tag>...</tag>`, the blocks come in the given order and nothing but
    whitespace follows the last block."""
    if not isinstance(text, str):
        return False
    position = 0
    for tag in tags:
        opening, closing = f"<{tag}>", f"</{tag}>"
        if text.count(opening) != 1 or text.count(closing) != 1:
            return False
        start = text.find(opening)
        end = text.find(closing)
        if start < position or end < start:
            return False
        position = end + len(closing)
    return not tags or not text[position:].strip()


@lru_cache(maxsize=64)
def _tag_patterns(tag: str) -> tuple[re.Pattern, re.Pattern]:
    return re.compile(re.escape(f"<{tag}>"), re.IGNORECASE), re.compile(re.escape(f"</{tag}>"), re.IGNORECASE)


def answer_span(text: str, tag: str = "answer") -> str | None:
    """Content of the last `<tag>` block; an unclosed last block runs to the end of the text; None without one."""
    if not isinstance(text, str):
        return None
    opening, closing = _tag_patterns(tag)
    literal = f"<{tag}>"
    start = text.rfind(literal)  # usually the last block; a case-variant after it sends us the long way
    if start >= 0 and opening.search(text, start + 1) is None:
        body_start = start + len(literal)
    else:
        matches = list(opening.finditer(text))
        if not matches:
            return None
        body_start = matches[-1].end()
    end = closing.search(text, body_start)
    return text[body_start:] if end is None else text[body_start : end.start()]


def _number(value: Any) -> float | None:
    kind = type(value)
    try:
        if kind is float or kind is int:
            number = float(value)
        elif kind is str:
            number = float(value.strip())
        else:  # bool, None, lists, objects
            return None
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


_KEY = re.compile(r"\[?\s*(\d{1,9})\s*\]*")
_KEY_IDS: dict[str, int | None] = {}  # the same few keys ("[1]" ... "[20]") come back in every completion
_NUMERIC = {int, float}


def _doc_id(key: Any) -> int | None:
    if type(key) is int:
        return key
    if type(key) is not str:
        return None
    doc = _KEY_IDS.get(key, -1)
    if doc == -1:
        match = _KEY.fullmatch(key.strip().strip("'\"")) if len(key) <= 64 else None
        doc = int(match.group(1)) if match else None
        if len(_KEY_IDS) < 65536:
            _KEY_IDS[key] = doc
    return doc


def _keep_first(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    return out if len(out) == len(pairs) else dict(reversed(pairs))


_DECODER = json.JSONDecoder(object_pairs_hook=_keep_first)
_PLAIN_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)


def _object_candidate(source: str) -> str | None:
    """The last fenced block holding a `{`, else the last `{...}` (or a trailing unclosed `{...`)."""
    if "```" in source:
        fenced = [m.group(1) for m in _FENCE.finditer(source) if "{" in m.group(1)]
        if fenced:
            source = fenced[-1]
    close, opening = source.rfind("}"), source.rfind("{")
    if opening < 0:
        return None
    if opening > close:
        return source[opening:]
    opening = source.rfind("{", 0, close)
    if source.find("}", opening + 1, close) < 0:  # flat object: the usual case
        return source[opening : close + 1]
    depth = 0
    for index in range(close, -1, -1):
        char = source[index]
        depth += char == "}"
        depth -= char == "{"
        if depth == 0:
            return source[index : close + 1]
    return source[opening : close + 1]


_REPAIRS = (
    (re.compile(r"\]\]+\""), ']"'),  # "[7]]" -> "[7]"
    (re.compile(r"\"\[\[+"), '"['),  # "[[7]" -> "[7]"
    (re.compile(r"(?<![\"\w])\[(\d+)\](?!\")\s*:"), r'"[\1]":'),  # [7]: -> "[7]":
    (re.compile(r"([{,]\s*)(\d+)\s*:"), r'\1"\2":'),  # 7: -> "7":
    (re.compile(r",\s*(?=[}\]])"), ""),  # trailing commas
)


def _repair(candidate: str, strict: bool = False) -> str:
    if strict:  # only the slips GroupRank's spec repairs: "[7]]" here, a missing "}" below
        text = _REPAIRS[0][0].sub(_REPAIRS[0][1], candidate.strip())
    else:
        text = candidate.strip().rstrip("`").strip().replace("'", '"')
        for pattern, replacement in _REPAIRS:
            text = pattern.sub(replacement, text)
        text = re.sub(r",\s*$", "", text)
    missing = text.count("{") - text.count("}")
    return text + "}" * max(0, missing)


_PAIR = re.compile(r"[\"']?\[?\s*(\d{1,9})\s*\]*[\"']?\s*:\s*[\"']?(-?\d+(?:\.\d+)?)(?![\d.eE])")


def _scores_fast(obj: dict) -> dict[int, float] | None:
    """The common case in C-level loops: every key already seen, every value a finite int or float, no two keys
    naming the same id. None sends the object to the careful loop."""
    values = obj.values()
    if not _NUMERIC.issuperset(map(type, values)):
        return None
    try:
        if not math.isfinite(sum(values)):
            return None
    except OverflowError:
        return None
    scores = dict(zip(map(_KEY_IDS.get, obj), map(float, values)))
    return scores if scores and len(scores) == len(obj) and None not in scores else None


def _scores_from(obj: Any) -> tuple[dict[int, float], bool]:
    """(id -> score, every entry was usable) from a decoded JSON object; duplicates already kept first."""
    if not isinstance(obj, dict):
        return {}, False
    fast = _scores_fast(obj)
    if fast is not None:
        return fast, True
    scores: dict[int, float] = {}
    clean = True
    for key, value in obj.items():
        doc, number = _doc_id(key), _number(value)
        if doc is None or number is None:
            clean = False
        elif doc not in scores:
            scores[doc] = number
    return scores, clean


def _loads(text: str) -> Any:
    """JSON value of `text` (None when invalid); in an object, a repeated key keeps its first value.

    The plain C decoder runs first. Its result is the same as the keep-first decoder's when the text has no `:`
    (no object has a pair) or when it is an object with as many pairs as `:` characters (each pair needs one,
    so no key repeats, no nested object has a pair, no string holds a `:`); only otherwise does the slower
    keep-first decoder run."""
    try:
        try:  # the C scanner straight away: `decode` adds whitespace skipping around it
            value, end = _PLAIN_DECODER.scan_once(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # leading or trailing whitespace, or not JSON (then this raises)
            value = _PLAIN_DECODER.decode(text)
        colons = text.count(":")
        if colons and not (type(value) is dict and len(value) == colons):
            value = _DECODER.decode(text)
        return value
    except (ValueError, RecursionError):
        return None


def parse_scores(text: str, tags: Sequence[str] = ("answer",), strict: bool = False) -> Parsed:
    """Groupwise scores `{"[1]": 7, "[2]": 0}` -> `{1: 7.0, 2: 0.0}` (1-based id -> score).

    Looks inside the last `<answer>` block (else the whole text), then at the last fenced json block or the last
    `{...}`; keys may be `"[3]"`, `"3"` or `[3]`. Small slips (`"[7]]"`, trailing commas, single quotes, a missing
    `}`) are repaired, and as a last resort `id: score` pairs are read with a pattern. A repeated id keeps its
    first score; non-numeric or non-finite scores are dropped. `ok` needs at least one id with a score.

    `strict=True` accepts JSON only: the repairs are limited to `"[7]]"` and a missing `}`, and there is no
    pattern fallback, so `Passage 1: 9 points` or `{[1]: 9}` is not ok (GroupRank's "JSON invalid" case)."""
    try:
        tags_ok = check_tags(text, tags)
        body = answer_span(text)
        source = body if body is not None else (text if isinstance(text, str) else "")
        candidate = _object_candidate(source)
        scores: dict[int, float] = {}
        clean = False
        if candidate is not None:
            decoded = _loads(candidate)
            if decoded is not None:
                scores, clean = _scores_from(decoded)
            else:
                scores, _ = _scores_from(_loads(_repair(candidate, strict)))
        if not scores and not strict:
            clean = False
            for doc, number in _PAIR.findall(candidate if candidate is not None else source):
                value = _number(number)
                if value is not None:
                    scores.setdefault(int(doc), value)
        ok = bool(scores)
        return Parsed(scores if ok else None, ok, tags_ok, tags_ok and ok and clean)
    except Exception:  # a parser must never take training down
        return Parsed()


_BRACKET_ID = re.compile(r"\[\s*(\d{1,9})\s*\]")
_INTEGER = re.compile(r"(?<![\d.])-?\d{1,9}(?![\d.])")


def parse_choice(text: str, tags: Sequence[str] = ("think", "answer")) -> Parsed:
    """Setwise choice `<answer>[k]</answer>` -> k. A bare `k` is accepted with format_ok False; several
    different ids, or no answer block, are not ok."""
    try:
        tags_ok = check_tags(text, tags)
        body = answer_span(text)
        if body is None:
            return Parsed(None, False, tags_ok, False)
        ids = list(dict.fromkeys(int(i) for i in _BRACKET_ID.findall(body)))
        clean = bool(re.fullmatch(r"\s*\[\s*\d{1,9}\s*\]\s*", body))
        if not ids:
            ids = list(dict.fromkeys(int(i) for i in _INTEGER.findall(body)))
            clean = False
        if len(ids) != 1:
            return Parsed(None, False, tags_ok, False)
        return Parsed(ids[0], True, tags_ok, tags_ok and clean)
    except Exception:
        return Parsed()


def parse_grade(text: str, low: int = 0, high: int = 10, tags: Sequence[str] = ("think", "answer")) -> Parsed:
    """Pointwise grade `<answer>7</answer>` -> 7 when `low <= 7 <= high`. An answer holding exactly one number
    among other words is accepted with format_ok False; decimals, several numbers or out-of-range values are not ok."""
    try:
        tags_ok = check_tags(text, tags)
        body = answer_span(text)
        if body is None:
            return Parsed(None, False, tags_ok, False)
        clean = bool(re.fullmatch(r"\s*[+-]?\d{1,9}\s*", body))
        numbers = re.findall(r"-?\d{1,9}(?:\.\d+)?", body)
        if len(numbers) != 1 or "." in numbers[0]:
            return Parsed(None, False, tags_ok, False)
        grade = int(numbers[0])
        if not low <= grade <= high:
            return Parsed(None, False, tags_ok, False)
        return Parsed(grade, True, tags_ok, tags_ok and clean)
    except Exception:
        return Parsed()


_CHAIN = re.compile(r"\s*\[\s*\d{1,9}\s*\](?:\s*>\s*\[\s*\d{1,9}\s*\])*\s*")
_LIST = re.compile(r"\s*\[\s*\d{1,9}(?:\s*,\s*\d{1,9})*\s*\]\s*")
_LAST_LIST = re.compile(r"\[\s*\d{1,9}(?:\s*,\s*\d{1,9})+\s*\]")


def parse_permutation(text: str, tags: Sequence[str] = ("think", "answer")) -> Parsed:
    """Ranking `[3] > [1] > [2]` or `[3, 1, 2]` -> [3, 1, 2], best first, as written (repeats and out-of-range ids
    are kept so rewards can judge them). Reads the answer block, or the whole text when there is none; other
    shapes fall back to the bracketed ids, the last list, or all integers, with format_ok False."""
    try:
        tags_ok = check_tags(text, tags)
        body = answer_span(text)
        source = body if body is not None else (text if isinstance(text, str) else "")
        if _CHAIN.fullmatch(source):
            ids, clean = [int(i) for i in _BRACKET_ID.findall(source)], True
        elif _LIST.fullmatch(source):
            ids, clean = [int(i) for i in re.findall(r"\d+", source)], True
        else:
            clean = False
            lists = _LAST_LIST.findall(source)
            ids = [int(i) for i in _BRACKET_ID.findall(source)]
            if lists:
                ids = [int(i) for i in re.findall(r"\d+", lists[-1])]
            elif not ids:
                ids = [int(i) for i in _INTEGER.findall(source) if not i.startswith("-")]
        ok = bool(ids)
        return Parsed(ids if ok else None, ok, tags_ok, tags_ok and ok and clean and body is not None)
    except Exception:
        return Parsed()


def _clean_label(label: Any) -> str:
    return str(label).strip().strip("\"'`*-•").strip()


def parse_labels(text: str, tags: Sequence[str] = ("answer",)) -> Parsed:
    """Label set from a JSON list (`["sports", "politics"]`) or a comma/semicolon/newline-separated list, inside the
    answer block when there is one. Labels are stripped and deduplicated case-insensitively (first spelling kept).
    An empty answer block is a valid empty set; text without an answer block must yield at least one label."""
    try:
        tags_ok = check_tags(text, tags)
        body = answer_span(text)
        source = body if body is not None else (text if isinstance(text, str) else "")
        start, end = source.rfind("["), source.rfind("]")
        decoded = _loads(source[start : end + 1]) if 0 <= start < end else None
        if isinstance(decoded, list):
            raw = [item for item in decoded if isinstance(item, (str, int, float)) and not isinstance(item, bool)]
            clean = len(raw) == len(decoded) and not source[:start].strip() and not source[end + 1 :].strip()
        else:
            raw, clean = re.split(r"[,;\n]", source), True
        labels: dict[str, str] = {}
        for item in raw:
            label = _clean_label(item)
            if label:
                labels.setdefault(label.casefold(), label)
        value = list(labels.values())
        ok = body is not None or bool(value)
        return Parsed(value if ok else None, ok, tags_ok, tags_ok and ok and clean and body is not None)
    except Exception:
        return Parsed()
