"""Request bodies of the serving API, parsed and bounded before anything reaches the model.

The rerank shape is the one Cohere, Jina, TEI and vLLM share (`query`, `documents` as strings or `{"text": ...}`,
`top_n`, `return_documents`), so their clients work unchanged. Every refusal is a `BadRequest` carrying the HTTP
status and a message that names the field: 400 for a body that is not JSON, 413 for sizes over a limit, 422 for
a well-formed body with wrong or missing fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 << 20
    max_documents: int = 1000  # a BM25 top-1000 is the largest list rerankers are usually given
    max_document_chars: int = 20_000  # the bundle trims passages much shorter; this bounds the body's work
    max_query_chars: int = 2_000
    max_texts: int = 256  # /v1/classify
    max_labels: int = 100


def parse_json(body: bytes) -> dict:
    try:
        text = body.decode("utf-8")  # json.loads would guess UTF-16/32 from the first bytes
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8 text") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadRequest(400, f"the body is not valid JSON: {err.msg} at line {err.lineno} "
                              f"column {err.colno}") from None
    if not isinstance(payload, dict):
        raise BadRequest(422, f"the body must be a JSON object, got {type(payload).__name__}")
    return payload


def _text(value, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(422, f"{field} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRequest(422, f"{field} is empty")
    if len(value) > limit:
        raise BadRequest(413, f"{field} has {len(value)} characters; the limit is {limit}")
    return value


def _texts(values, field: str, count_limit: int, chars_limit: int, allow_objects: bool = False) -> list[str]:
    if not isinstance(values, list):
        raise BadRequest(422, f"{field} must be a list, got {type(values).__name__}")
    if not values:
        raise BadRequest(422, f"{field} is empty")
    if len(values) > count_limit:
        raise BadRequest(413, f"{field} has {len(values)} entries; the limit is {count_limit}")
    out = []
    for i, value in enumerate(values):
        if allow_objects and isinstance(value, dict):  # {"text": ...} as in Cohere's and Jina's APIs
            if "text" not in value:
                raise BadRequest(422, f"{field}[{i}] is an object without a 'text' field")
            value = value["text"]
        out.append(_text(value, f"{field}[{i}]", chars_limit))
    return out


def _unknown(payload: dict, known: set[str]) -> None:
    extra = sorted(set(payload) - known)
    if extra:  # a typo such as "top_k" would otherwise be ignored silently
        raise BadRequest(422, f"unknown field {', '.join(map(repr, extra))} (known: {', '.join(sorted(known))})")


RERANK_FIELDS = {"model", "query", "documents", "texts", "top_n", "return_documents", "return_text",
                 "first_stage_scores", "max_chunks_per_doc", "rank_fields", "truncate", "raw_scores"}


def parse_rerank(payload: dict, limits: Limits) -> dict:
    """{query, documents, top_n, return_documents, first_stage_scores} from a rerank body. TEI's spelling
    (`texts`, `return_text`) is accepted beside the common one."""
    _unknown(payload, RERANK_FIELDS)
    if "query" not in payload:
        raise BadRequest(422, "missing field 'query'")
    query = _text(payload["query"], "query", limits.max_query_chars)
    key = "documents" if "documents" in payload or "texts" not in payload else "texts"
    if key not in payload:
        raise BadRequest(422, "missing field 'documents'")
    documents = _texts(payload[key], key, limits.max_documents, limits.max_document_chars, allow_objects=True)
    top_n = payload.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise BadRequest(422, f"top_n must be a positive integer, got {top_n!r}")
    flag = payload.get("return_documents", payload.get("return_text", False))
    if not isinstance(flag, bool):
        raise BadRequest(422, f"return_documents must be true or false, got {flag!r}")
    scores = payload.get("first_stage_scores")
    if scores is not None:
        numbers = isinstance(scores, list) and all(
            isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in scores)
        if not numbers or len(scores) != len(documents):
            raise BadRequest(422, f"first_stage_scores must be {len(documents)} finite numbers, one per document")
    return {"query": query, "documents": documents, "top_n": top_n, "return_documents": flag,
            "first_stage_scores": scores}


def parse_classify(payload: dict, limits: Limits) -> dict:
    """{texts, labels} from a classify body; `input` (a string or a list) is accepted for `texts`."""
    _unknown(payload, {"model", "texts", "input", "labels", "classification_type", "threshold"})
    key = "texts" if "texts" in payload or "input" not in payload else "input"
    if key not in payload:
        raise BadRequest(422, "missing field 'texts'")
    texts = payload[key] if isinstance(payload[key], list) else [payload[key]]
    texts = _texts(texts, key, limits.max_texts, limits.max_document_chars)
    if "labels" not in payload:
        raise BadRequest(422, "missing field 'labels'")
    labels = _texts(payload["labels"], "labels", limits.max_labels, limits.max_query_chars)
    if len(set(labels)) != len(labels):
        raise BadRequest(422, "labels holds a name twice")
    kind = payload.get("classification_type")
    if kind not in (None, "single-label", "multi-label"):
        raise BadRequest(422, f"classification_type must be single-label or multi-label, got {kind!r}")
    threshold = payload.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 <= threshold <= 1):
        raise BadRequest(422, f"threshold must be a number between 0 and 1, got {threshold!r}")
    return {"texts": texts, "labels": labels, "classification_type": kind, "threshold": threshold}
