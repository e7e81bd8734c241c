"""Teacher prompts (own wording) and the parse functions that read their replies.

Pointwise, listwise and query-generation prompts live here (version `PROMPT_VERSION`). Trace prompts are the
groupwise paradigm's own training prompts, so that the SFT data matches what the trainer shows the model; they are
reached through the paradigm protocol (`trace_messages`, `trace_prompt_version`, `trace_budget`), by name.

Replies are read with the shared parsers of `rerank_rl.rewards.parsers` (none of them raises); the functions below
only adapt their results to what synthesis needs (range checks, de-duplication).
"""

from __future__ import annotations

from collections.abc import Sequence

from rerank_rl.rewards import parsers

PROMPT_VERSION = "synth-v1"

# Reply openings written for the teacher (TeacherConfig.prefill): the model continues from inside the answer tag,
# which keeps even a 135M model in the expected format. Replies include them, so parsers see the whole answer.
POINTWISE_PREFILL = "<answer>"
LISTWISE_PREFILL = "<answer>["
QUERY_PREFILL = "<answer>"


def _clip(text: str, max_chars: int) -> str:
    return " ".join(text.split())[:max_chars]


def pointwise_messages(query: str, passage: str, max_chars: int = 600) -> list[dict]:
    system = ("You are a careful relevance assessor for a search engine. Read the query and the passage, then grade "
              "how useful the passage is for answering the query on a 0-10 scale: 0 = unrelated, 2-3 = same topic "
              "but no help, 5-6 = partly answers or gives strong evidence, 9-10 = directly and fully answers. "
              "Reply with the integer grade inside <answer></answer>, for example <answer>6</answer>.")
    user = f"Query: {query}\n\nPassage: {_clip(passage, max_chars)}\n\nGrade (0-10):"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def listwise_messages(query: str, passages: Sequence[str], max_chars: int = 600) -> list[dict]:
    n = len(passages)
    system = ("You are a careful relevance assessor for a search engine. Order the numbered passages from the most "
              "to the least useful for answering the query. Reply with every identifier exactly once inside "
              "<answer></answer>, joined by '>', for example <answer>[2] > [3] > [1]</answer>.")
    numbered = "\n".join(f"[{i}] {_clip(p, max_chars)}" for i, p in enumerate(passages, start=1))
    user = f"Query: {query}\n\nPassages:\n{numbered}\n\nOrder all {n} passages, [1] to [{n}]:"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def query_messages(document: str, examples: Sequence[tuple[str, str]] = (), max_chars: int = 800) -> list[dict]:
    """DUQGen: one search query the document answers; `examples` are (document, query) pairs shown as turns."""
    system = ("You write realistic search queries. Given a document, write one query that a person could type into "
              "a search engine and that this document answers. Match the style of the examples. Reply with the "
              "query only, inside <answer></answer>.")
    messages = [{"role": "system", "content": system}]
    for doc, query in examples:
        messages.append({"role": "user", "content": f"Document: {_clip(doc, max_chars)}"})
        messages.append({"role": "assistant", "content": f"<answer>{query}</answer>"})
    messages.append({"role": "user", "content": f"Document: {_clip(document, max_chars)}"})
    return messages


TRACE_PARADIGM = "groupwise"  # traces are scored groups: the teacher answers the groupwise prompt


def _trace_paradigm(paradigm: str = TRACE_PARADIGM):
    from rerank_rl.rl.paradigms import get_paradigm

    return get_paradigm(paradigm)


def trace_messages(query: str, passages: Sequence[str], variant: str, max_chars: int) -> list[dict]:
    """The trained paradigm's prompt for one group (the teacher answers it as the student later will)."""
    return _trace_paradigm().build_messages(query, passages, variant, max_chars)


def trace_prompt_version() -> str:
    return _trace_paradigm().prompt_version


def trace_budget(group_size: int, variant: str) -> int:
    return _trace_paradigm().max_new_tokens(group_size, variant)


def trace_prefill(variant: str) -> str:
    return "<reason>" if variant == "reasoning" else '<answer>{"[1]":'


def trace_tags(variant: str) -> tuple[str, ...]:
    return ("reason", "answer") if variant == "reasoning" else ("answer",)


# --- readers of teacher replies: each returns None when the reply is unusable, and never raises -------------------

def read_grade(text: str) -> int | None:
    parsed = parsers.parse_grade(text, 0, 10, tags=("answer",))
    return parsed.value if parsed.ok else None


def read_permutation(text: str, n: int) -> list[int] | None:
    """0-based positions best first: ids de-duplicated, out-of-range ids dropped (missing ones are the caller's)."""
    parsed = parsers.parse_permutation(text, tags=("answer",))
    if not parsed.ok:
        return None
    order = [i - 1 for i in dict.fromkeys(parsed.value) if 1 <= i <= n]
    return order or None


def read_trace(text: str, n: int, variant: str, require_format: bool) -> dict | None:
    """{"scores": {0-based position: score}, "format_ok": bool, "coverage": share of passages scored}."""
    parsed = parsers.parse_scores(text, tags=trace_tags(variant))
    if not parsed.ok or (require_format and not parsed.format_ok):
        return None
    scores = {i - 1: float(s) for i, s in parsed.value.items() if 1 <= i <= n}
    if not scores:
        return None
    return {"scores": scores, "format_ok": parsed.format_ok, "coverage": len(scores) / n}


def read_query(text: str) -> str | None:
    """The generated query: the answer block, else the first non-empty line; 3 to 300 characters."""
    body = parsers.answer_span(text)
    if body is None:
        body = next((line for line in text.splitlines() if line.strip()), "")
    query = " ".join(body.split()).strip("\"'` ")
    if query.lower().startswith("query:"):
        query = query[6:].strip()
    return query if 3 <= len(query) <= 300 else None
