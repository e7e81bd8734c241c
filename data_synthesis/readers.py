"""Readers for the standard IR formats, each returning plain Python structures or ranking examples.

Every reader rejects malformed input with a `UserError` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from rerank_rl.rl.errors import UserError, located

Qrels = dict[str, dict[str, int]]
Run = dict[str, list[tuple[str, float]]]


def _open_text(path: Path) -> io.TextIOBase:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: is not a file")
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path), encoding="utf-8")
        return path.open(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot open ({err.strerror or err})") from None


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, stripped line) for every non-blank line."""
    path = Path(path)
    lineno = 0
    with _open_text(path) as handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                if line.strip():
                    yield lineno, line.rstrip("\n")
        except UnicodeDecodeError:
            raise located(path, _first_undecodable_line(path), "not UTF-8 text") from None
        except (OSError, EOFError) as err:  # a truncated or corrupt .gz
            raise UserError(f"{path}: unreadable ({err})") from None


def _first_undecodable_line(path: Path) -> int | None:
    """Line number of the first line that is not UTF-8 (text is decoded in chunks, so the reader cannot tell)."""
    try:
        with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as raw:
            for lineno, line in enumerate(raw, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return lineno
    except (OSError, EOFError):
        pass
    return None


def read_qrels(path: str | Path) -> Qrels:
    """TREC qrels: `qid iter docid rel` (whitespace separated, rel an integer)."""
    qrels: Qrels = {}
    for lineno, line in _lines(path):
        fields = line.split()
        if len(fields) != 4:
            raise located(path, lineno, f"qrels line needs 4 fields 'qid iter docid rel', found {len(fields)}")
        qid, _, docid, rel = fields
        try:
            qrels.setdefault(qid, {})[docid] = int(rel)
        except ValueError:
            raise located(path, lineno, f"relevance {rel!r} is not an integer") from None
    return qrels


def read_trec_run(path: str | Path) -> Run:
    """TREC run: `qid Q0 docid rank score tag`. Returns qid -> [(docid, score)] in file order."""
    run: Run = {}
    seen: dict[str, set[str]] = {}
    for lineno, line in _lines(path):
        fields = line.split()
        if len(fields) != 6:
            raise located(path, lineno, f"run line needs 6 fields 'qid Q0 docid rank score tag', found {len(fields)}")
        qid, _, docid, _, score, _ = fields
        if docid in seen.setdefault(qid, set()):
            raise located(path, lineno, f"doc id {docid!r} appears twice for query {qid!r}")
        seen[qid].add(docid)
        try:
            run.setdefault(qid, []).append((docid, float(score)))
        except ValueError:
            raise located(path, lineno, f"score {score!r} is not a number") from None
    return run


def read_topics(path: str | Path) -> dict[str, str]:
    """Topics TSV: `qid<TAB>query text` (plain or .gz)."""
    topics: dict[str, str] = {}
    for lineno, line in _lines(path):
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip():
            raise located(path, lineno, "topics line needs 'qid<TAB>query'")
        topics[fields[0].strip()] = fields[1].strip()
    return topics


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) from a JSON-lines file; each line must hold a JSON object."""
    for lineno, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise located(path, lineno, f"invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise located(path, lineno, "expected a JSON object")
        yield lineno, obj


def _ranking_example(qid, query, hits, qrels: Qrels | None, where) -> dict:
    judged = (qrels or {}).get(qid, {})
    doc_ids = [h[0] for h in hits]
    if len(set(doc_ids)) != len(doc_ids):
        dup = next(d for i, d in enumerate(doc_ids) if d in doc_ids[:i])
        raise UserError(f"{where}: doc id {dup!r} appears twice for query {qid!r}")
    return {
        "qid": qid,
        "query": query,
        "doc_ids": doc_ids,
        "doc_texts": [h[1] for h in hits],
        "first_stage_scores": [float(h[2]) for h in hits],
        "labels": [max(0, judged.get(d, 0)) for d in doc_ids],
    }


def read_rank_llm(path: str | Path, qrels: Qrels | None = None, depth: int | None = None) -> list[dict]:
    """rank_llm `retrieve_results` JSON: [{"query": str, "hits": [{"qid","docid","content","score","rank"}]}]."""
    path = Path(path)
    with _open_text(path) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as err:
            raise located(path, err.lineno, f"invalid JSON ({err.msg}, column {err.colno})") from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None
        except (OSError, EOFError) as err:
            raise UserError(f"{path}: unreadable ({err})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of {{'query', 'hits'}} objects")
    examples = []
    for i, entry in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict) or "query" not in entry or "hits" not in entry:
            raise UserError(f"{where}: needs keys 'query' and 'hits'")
        hits = entry["hits"][:depth] if depth else entry["hits"]
        if not hits:
            continue
        try:
            qid = str(entry.get("qid", hits[0]["qid"]))
            rows = [(str(h["docid"]), str(h["content"]), float(h["score"])) for h in hits]
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{where}: every hit needs 'qid', 'docid', 'content' and a numeric 'score' ({err})") from None
        examples.append(_ranking_example(qid, str(entry["query"]), rows, qrels, where))
    return examples


def read_run_with_texts(
    run_path: str | Path,
    topics_path: str | Path,
    corpus: dict[str, str],
    qrels: Qrels | None = None,
    depth: int | None = None,
) -> list[dict]:
    """A TREC run joined with its topics and a {docid: text} corpus into ranking examples."""
    run, topics = read_trec_run(run_path), read_topics(topics_path)
    examples = []
    for qid, hits in run.items():
        if qid not in topics:
            raise UserError(f"{run_path}: query {qid!r} has no entry in {topics_path}")
        hits = sorted(hits, key=lambda h: -h[1])[:depth] if depth else sorted(hits, key=lambda h: -h[1])
        missing = [d for d, _ in hits if d not in corpus]
        if missing:
            raise UserError(f"{run_path}: doc id {missing[0]!r} (query {qid!r}) is not in the corpus")
        rows = [(d, corpus[d], s) for d, s in hits]
        examples.append(_ranking_example(qid, topics[qid], rows, qrels, str(run_path)))
    return examples


def read_beir(folder: str | Path, split: str = "test") -> tuple[dict[str, str], dict[str, str], Qrels]:
    """BEIR layout: corpus.jsonl ({_id, title, text}), queries.jsonl ({_id, text}), qrels/<split>.tsv (with header)."""
    folder = Path(folder)
    corpus = {}
    for lineno, obj in read_jsonl(folder / "corpus.jsonl"):
        if "_id" not in obj:
            raise located(folder / "corpus.jsonl", lineno, "missing '_id'")
        corpus[str(obj["_id"])] = " ".join(p for p in (obj.get("title", ""), obj.get("text", "")) if p).strip()
    queries = {}
    for lineno, obj in read_jsonl(folder / "queries.jsonl"):
        if "_id" not in obj or "text" not in obj:
            raise located(folder / "queries.jsonl", lineno, "needs '_id' and 'text'")
        queries[str(obj["_id"])] = str(obj["text"])
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels: Qrels = {}
    for lineno, line in _lines(qrels_path):
        fields = line.split("\t")
        if lineno == 1 and fields[0].lower() in ("query-id", "qid"):
            continue
        if len(fields) != 3:
            raise located(qrels_path, lineno, f"needs 3 tab-separated fields 'query-id corpus-id score', found {len(fields)}")
        try:
            qrels.setdefault(fields[0], {})[fields[1]] = int(float(fields[2]))
        except ValueError:
            raise located(qrels_path, lineno, f"score {fields[2]!r} is not a number") from None
    return corpus, queries, qrels


def read_triples(path: str | Path, fix_mojibake: bool = True) -> list[tuple[str, str, str]]:
    """Query / positive / negative triples TSV (MS MARCO style, no header)."""
    triples = []
    for lineno, line in _lines(path):
        fields = line.split("\t")
        if len(fields) != 3:
            raise located(path, lineno, f"triple needs 3 tab-separated fields, found {len(fields)}")
        triples.append(tuple(_fix_mojibake(f) if fix_mojibake else f for f in fields))
    return triples


def _fix_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as Latin-1 once (the MS MARCO triples carry such text); leave clean text alone."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def triples_as_examples(triples: list[tuple[str, str, str]]) -> list[dict]:
    """Each triple becomes a two-candidate ranking example (positive label 1, first-stage order pos, neg)."""
    return [
        {
            "qid": f"triple-{i}",
            "query": q,
            "doc_ids": [f"triple-{i}-pos", f"triple-{i}-neg"],
            "doc_texts": [pos, neg],
            "first_stage_scores": [1.0, 0.0],
            "labels": [1, 0],
        }
        for i, (q, pos, neg) in enumerate(triples)
    ]


def read_csv_rows(path: str | Path, handle=None, delimiter: str = ",") -> Iterator[tuple[int, dict]]:
    """Yield (line number, row dict) from a CSV with a header; `handle` lets callers read from inside a zip."""
    path = Path(path)
    stream = handle if handle is not None else _open_text(path)
    with stream:
        reader = csv.DictReader(stream, delimiter=delimiter)
        try:
            for row in reader:
                if None in row:
                    raise located(path, reader.line_num, "more fields than the header names")
                yield reader.line_num, row
        except csv.Error as err:
            raise located(path, reader.line_num, f"malformed CSV ({err})") from None
        except UnicodeDecodeError:
            raise located(path, reader.line_num + 1, "not UTF-8 text") from None
