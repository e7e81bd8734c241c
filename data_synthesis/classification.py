"""Readers for the classification sets in ../shared/data, and for generic classification files, into the
classification schema (text, label_names, gold_labels).

Each dataset keeps its own quirks here (see its SOURCE.txt): AG News is a header-less CSV with 1-based class ids and
backslash line breaks, SST-2 and Yin et al. 2019 are header-less `label<TAB>text` TSVs with integer ids, BANKING77 is a
CSV with snake_case intent names, dair-ai emotion is `text;label` split on the last ';'. Every example offers the
dataset's whole label set; training code samples from it. Malformed lines raise a UserError naming file and line.
"""

from __future__ import annotations

import csv
import html
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from rerank_rl.data_synthesis.readers import (
    _lines, _open_text, read_csv_rows, read_jsonl, read_rank_llm, read_triples,
)
from rerank_rl.data_synthesis.scifact import read_scifact_corpus
from rerank_rl.rl.errors import UserError, located

Example = dict  # {"text": str, "label_names": list[str], "gold_labels": list[str]}

SST2_LABELS = ["negative", "positive"]


def _example(text: str, label_names: list[str], gold: list[str]) -> Example:
    return {"text": text, "label_names": list(label_names), "gold_labels": list(gold)}


def _label_lines(path: Path) -> list[str]:
    names = [line.strip() for _, line in _lines(path)]
    if not names:
        raise UserError(f"{path}: no label names")
    return names


def _index_label(path: Path, lineno: int, raw: str, names: list[str], base: int) -> str:
    """Map an integer class id (counted from `base`) to its name, or fail naming the line."""
    try:
        index = int(raw.strip().strip('"')) - base
    except ValueError:
        raise located(path, lineno, f"label {raw!r} is not an integer class id") from None
    if not 0 <= index < len(names):
        raise located(path, lineno, f"class id {raw.strip()} is outside {base}..{base + len(names) - 1}")
    return names[index]


def _clean_ag(text: str) -> str:
    # The AG CSV writes line breaks as a backslash and lost the '&' of numeric entities ("#36;" is "$").
    text = text.replace("\\", " ")
    text = re.sub(r"#(\d{2,4});", lambda m: chr(int(m.group(1))), text)
    return re.sub(r"\s+", " ", text).strip()


def read_ag_news(folder: str | Path, split: str = "test") -> list[Example]:
    folder = Path(folder)
    names = _label_lines(folder / "classes.txt")
    path = folder / f"{split}.csv"
    rows = []
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        for fields in reader:
            lineno = reader.line_num
            if len(fields) != 3:
                raise located(path, lineno, f"needs 3 fields 'class,title,description', found {len(fields)}")
            label = _index_label(path, lineno, fields[0], names, base=1)
            text = _clean_ag(f"{fields[1]}. {fields[2]}")
            rows.append(_example(text, names, [label]))
    return rows


def _read_indexed_tsv(path: Path, names: list[str], unescape: bool = False) -> list[Example]:
    """`label_id<TAB>text` lines, ids counted from 0; `unescape` decodes HTML entities (tweets carry `&amp;`)."""
    rows = []
    for lineno, line in _lines(path):
        label, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise located(path, lineno, "needs 'label<TAB>text'")
        text = html.unescape(text) if unescape else text
        rows.append(_example(text.strip(), names, [_index_label(path, lineno, label, names, base=0)]))
    return rows


def read_sst2(folder: str | Path, split: str = "train") -> list[Example]:
    return _read_indexed_tsv(Path(folder) / f"{split}.tsv", SST2_LABELS)


def read_yin2019_emotion(folder: str | Path, split: str = "test") -> list[Example]:
    folder = Path(folder)
    return _read_indexed_tsv(folder / f"{split}.txt", _label_lines(folder / "classes.txt"), unescape=True)


def read_banking77(folder: str | Path, split: str = "train") -> list[Example]:
    folder = Path(folder)
    categories = folder / "categories.json"
    try:
        intents = json.loads(_open_text(categories).read())
    except json.JSONDecodeError as err:
        raise located(categories, err.lineno, f"invalid JSON ({err.msg})") from None
    names = [name.replace("_", " ") for name in intents]
    known = set(intents)
    path = folder / f"{split}.csv"
    rows = []
    for lineno, row in read_csv_rows(path):
        text, intent = (row.get("text") or "").strip(), (row.get("category") or "").strip()
        if not text or not intent:
            raise located(path, lineno, "needs non-empty 'text' and 'category' columns")
        if intent not in known:
            raise located(path, lineno, f"intent {intent!r} is not in categories.json")
        rows.append(_example(text, names, [intent.replace("_", " ")]))
    return rows


def read_emotion_dair(folder: str | Path, split: str = "train") -> list[Example]:
    path = Path(folder) / f"{split}.txt"
    parsed = []
    for lineno, line in _lines(path):
        text, sep, label = line.rpartition(";")
        if lineno == 1 and (text, label) == ("text", "label_name"):
            continue
        if not sep or not text.strip() or not label.strip():
            raise located(path, lineno, "needs 'text;label'")
        parsed.append((text.strip(), label.strip()))
    names = ["sadness", "joy", "love", "anger", "fear", "surprise"]
    for label in {label for _, label in parsed} - set(names):
        raise UserError(f"{path}: unknown emotion label {label!r} (expected one of {', '.join(names)})")
    return [_example(text, names, [label]) for text, label in parsed]


READERS: dict[str, tuple[Callable[..., list[Example]], str]] = {
    "ag_news": (read_ag_news, "test"),
    "sst2": (read_sst2, "train"),
    "banking77": (read_banking77, "train"),
    "emotion_dair": (read_emotion_dair, "train"),
    "yin2019_emotion": (read_yin2019_emotion, "test"),
}


def read_named(spec: str, root: str | Path) -> list[Example]:
    """`name` or `name:split` of a set under `root` (e.g. `banking77:test`), read with that set's reader; or a
    classification file of the user's own (JSONL, CSV or TSV; see `read_classification_file`), whose label set is
    every gold label it names."""
    path = Path(spec).expanduser()
    if path.is_file():
        return read_classification_file(path)
    name, _, split = spec.partition(":")
    from rerank_rl.data_synthesis.label_corpus import QUERY_SETS, read_query_labels

    if name in QUERY_SETS:  # ranking data turned into classification (queries as labels)
        return read_query_labels(name, split, root)
    if name == "masked_keywords":  # unlabeled texts as a cloze: the removed keyword is the label
        from rerank_rl.data_synthesis.keyword_labels import read_keyword_labels

        return read_keyword_labels(split, root)
    if name not in READERS:
        known = ", ".join(sorted([*READERS, *QUERY_SETS, "masked_keywords"]))
        raise UserError(f"unknown classification set {name!r}: neither a known set ({known}) nor a file")
    reader, default_split = READERS[name]
    return reader(_data_folder(root, name), split or default_split)


def _data_folder(root: str | Path, name: str) -> Path:
    folder = Path(root) / name
    if not folder.is_dir():
        raise UserError(f"{folder}: no such data folder (data root {root})")
    return folder


def read_classification_file(path: str | Path, labels: list[str] | None = None) -> list[Example]:
    """Any classification file for `rerank-rl evaluate --data`.

    A file inside a folder named like a known set is read by that set's reader. Otherwise: JSONL objects with
    `text` and `label`/`labels`/`gold_labels` (name, list of names, or integer index into `labels`), a CSV with a
    header holding `text` and `label` (or `category`), or a `label<TAB>text` TSV. Integer gold labels index
    `labels`; with `labels` given, they are the candidates and every gold label must be one of them.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    name = path.parent.name
    if name in READERS:
        rows = READERS[name][0](path.parent, path.stem)
        return _restrict(rows, labels, path) if labels else rows
    if path.suffix in (".jsonl", ".json"):
        raw = [(n, obj.get("text"), _gold_field(obj)) for n, obj in read_jsonl(path)]
    elif path.suffix == ".csv":
        raw = [(n, row.get("text"), row.get("label", row.get("category"))) for n, row in read_csv_rows(path)]
    else:
        raw = []
        for n, line in _lines(path):
            gold, sep, text = line.partition("\t")
            raw.append((n, text if sep else None, gold))
    rows = []
    for lineno, text, gold in raw:
        if not isinstance(text, str) or not text.strip() or gold in (None, "", []):
            raise located(path, lineno, "needs a text and a gold label")
        rows.append((lineno, text.strip(), [_gold_name(path, lineno, g, labels) for g in _as_list(gold)]))
    names = labels or sorted({g for _, _, golds in rows for g in golds})
    examples = [_example(text, names, golds) for _, text, golds in rows]
    return _restrict(examples, labels, path) if labels else examples


def _gold_field(obj: dict):
    for key in ("gold_labels", "labels", "label"):
        if key in obj:
            return obj[key]
    return None


def _as_list(gold) -> list:
    return list(gold) if isinstance(gold, list) else [gold]


def _gold_name(path: Path, lineno: int, gold, labels: list[str] | None) -> str:
    text = str(gold).strip()
    if isinstance(gold, int) or (labels and text.isdigit() and text not in labels):
        if not labels:
            raise located(path, lineno, f"integer label {text} needs --labels to name the classes")
        return _index_label(path, lineno, text, labels, base=0)
    return text


def _restrict(rows: list[Example], labels: list[str], path: Path) -> list[Example]:
    offered = set(labels)
    for i, row in enumerate(rows):
        missing = [g for g in row["gold_labels"] if g not in offered]
        if missing:
            raise UserError(f"{path}: example {i + 1} has gold label {missing[0]!r}, which is not among the given "
                            f"labels ({', '.join(labels)})")
        row["label_names"] = list(labels)
    return rows


def _unlabeled_trec_dl(folder: Path, split: str) -> list[str]:
    splits = [split] if split else ["dl19", "dl21"]
    texts = (text for s in splits for ex in read_rank_llm(folder / "BM25" / f"retrieve_results_{s}.json")
             for text in ex["doc_texts"])
    return list(dict.fromkeys(texts))  # a passage retrieved for two queries counts once


def _unlabeled_scifact(folder: Path, _split: str) -> list[str]:
    return list(read_scifact_corpus(folder).values())


def _unlabeled_triples(folder: Path, _split: str) -> list[str]:
    return list(dict.fromkeys(text for _, pos, neg in read_triples(folder / "raw.tsv") for text in (pos, neg)))


UNLABELED: dict[str, Callable[[Path, str], list[str]]] = {
    "trec_dl": _unlabeled_trec_dl,  # BM25 top-100 passages of DL19 and DL21 (or `trec_dl:dl19`)
    "beir_scifact": _unlabeled_scifact,  # 5,183 abstracts
    "msmarco_train_triples_splade_toy": _unlabeled_triples,
}


def read_unlabeled(spec: str, root: str | Path) -> list[Example]:
    """Texts without labels, as examples with empty label lists: a named corpus under `root` (`trec_dl`,
    `trec_dl:dl19`, `beir_scifact`, ...), a JSONL file with a `text` field, or a text file with one text per line."""
    name, _, split = spec.partition(":")
    if name in UNLABELED:
        texts = UNLABELED[name](_data_folder(root, name), split)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"unlabeled texts {spec!r}: neither a known corpus ({', '.join(sorted(UNLABELED))}) "
                            "nor a file")
        if path.suffix in (".jsonl", ".json"):
            texts = []
            for lineno, obj in read_jsonl(path):
                if not isinstance(obj.get("text"), str) or not obj["text"].strip():
                    raise located(path, lineno, "needs a non-empty 'text' field")
                texts.append(obj["text"])
        else:
            texts = [line for _, line in _lines(path) if line.strip()]
    return [_example(text.strip(), [], []) for text in texts if text.strip()]


def sample(rows: list[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random subset of `n` rows (all rows, in file order, when n is None or covers the file)."""
    if n is None or n >= len(rows):
        return rows
    return random.Random(seed).sample(rows, n)
