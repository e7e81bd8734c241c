"""A procedurally generated reranking corpus, so that the default recipe needs nothing outside the repository.

Each query asks for one attribute of one invented entity ("what is the melting point of varnox?"). Its candidates:
  grade 3  states that attribute of that entity (the answer);
  grade 2  discusses that attribute of that entity without giving the value;
  grade 1  describes the same entity, but another attribute (shares the entity name with the query);
  grade 0  gives the same attribute of another entity (shares the attribute words: a lexical hard negative),
           or is about something else entirely.
Entity names are invented, so a model cannot know the answers: judging needs reading the passage. They are proper
names, spelled alike (capitalised) in queries and passages: a model cannot know that "varnox" and "Varnox" name the
same invented thing, as it knows it of "titanium" and "Titanium", so two spellings would test a guess, not reading.
First-stage scores are a noisy word-overlap score, which ranks the hard negatives high, as a lexical retriever would.
"""

from __future__ import annotations

import random
import re

# (question template, answer template, vague template); {e} entity, {v} value.
ATTRIBUTES = [
    ("what is the melting point of {e}", "{e} melts at {v} degrees Celsius under normal pressure.",
     "The melting point of {e} has been studied, but published measurements disagree."),
    ("who discovered {e}", "{e} was first described by the chemist {v} in a survey of mountain springs.",
     "Historians still debate who discovered {e}; several names appear in early notes."),
    ("where is {e} mined", "Most {e} is mined in {v}, where open pits supply nearly all of it.",
     "Mining of {e} happens in a few regions, though exact locations are rarely published."),
    ("what color is {e}", "Freshly cut {e} has a {v} color that fades when it is exposed to air.",
     "The color of {e} varies between samples and is hard to describe."),
    ("how dense is {e}", "{e} has a density of {v} grams per cubic centimetre.",
     "Density figures for {e} are often quoted, yet they depend on how it was prepared."),
    ("what is {e} used for", "Engineers use {e} mainly for {v}.",
     "{e} has many uses, and its main use has changed over the decades."),
]
VALUES = [
    [str(n) for n in range(120, 1900, 37)],
    ["Ilse Markova", "Tomas Reyl", "Amara Quist", "Jon Halvard", "Priya Sethi", "Lucas Oberg", "Mei Tanaka"],
    ["northern Chile", "the Ural foothills", "western Australia", "the Atlas range", "central Finland", "Yukon"],
    ["pale green", "deep violet", "copper red", "silvery blue", "amber", "matte black"],
    [f"{d / 10:.1f}" for d in range(18, 220, 7)],
    ["heat shields", "battery electrodes", "optical coatings", "surgical tools", "solar panels", "pipe linings"],
]
OFF_TOPIC = [
    "The village festival draws crowds every spring with music and food stalls.",
    "Regular stretching before a run lowers the risk of muscle strain.",
    "The library extended its opening hours during the exam period.",
    "Migrating geese fly in a V shape to save energy on long journeys.",
    "A good sourdough starter needs flour, water and a few days of patience.",
    "The ferry timetable changes in winter when fewer tourists travel.",
]
_SYLLABLES = ["var", "nox", "tel", "qui", "dor", "zan", "mek", "lis", "pra", "ven", "sol", "rik", "tam", "bez"]


def _entities(rng: random.Random, count: int) -> list[str]:
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.sample(_SYLLABLES, 2)) + rng.choice(["ium", "ite", "on", "ar"]))
    return [name.capitalize() for name in sorted(names)]


def _overlap_score(query: str, text: str, rng: random.Random) -> float:
    words = lambda s: set(re.findall(r"[a-z]+", s.lower()))  # noqa: E731
    return len(words(query) & words(text)) + rng.gauss(0.0, 0.8)


def generate_examples(num_queries: int, candidates: int = 10, seed: int = 0, prefix: str = "q") -> list[dict]:
    """Ranking examples (schema of data_synthesis.schema) with graded labels and first-stage scores."""
    if candidates < 4:
        raise ValueError("built-in examples need at least 4 candidates per query")
    rng = random.Random(seed)
    entities = _entities(rng, max(8, num_queries // 2 + 4))
    facts = {(e, a): rng.choice(VALUES[a]) for e in entities for a in range(len(ATTRIBUTES))}
    examples = []
    for qi in range(num_queries):
        entity, attr = rng.choice(entities), rng.randrange(len(ATTRIBUTES))
        question, answer, vague = ATTRIBUTES[attr]
        query = question.format(e=entity) + "?"
        docs = [(answer.format(e=entity, v=facts[entity, attr]), 3)]
        if rng.random() < 0.6:
            docs.append((vague.format(e=entity), 2))
        others = [a for a in range(len(ATTRIBUTES)) if a != attr]
        for a in rng.sample(others, 2):
            docs.append((ATTRIBUTES[a][1].format(e=entity, v=facts[entity, a]), 1))
        rivals = [e for e in entities if e != entity]
        for rival in rng.sample(rivals, max(0, min(len(rivals), candidates - 1 - len(docs)))):
            docs.append((answer.format(e=rival, v=facts[rival, attr]), 0))
        docs.append((rng.choice(OFF_TOPIC), 0))
        docs = docs[:candidates]
        scored = sorted(((round(_overlap_score(query, t, rng), 3), t, g) for t, g in docs), key=lambda x: -x[0])
        examples.append({
            "qid": f"{prefix}{qi}",
            "query": query,
            "doc_ids": [f"{prefix}{qi}-d{j}" for j in range(len(scored))],
            "doc_texts": [t for _, t, _ in scored],
            "first_stage_scores": [s for s, _, _ in scored],
            "labels": [g for _, _, g in scored],
        })
    return examples


def qrels_of(examples: list[dict]) -> dict[str, dict[str, int]]:
    return {ex["qid"]: dict(zip(ex["doc_ids"], ex["labels"])) for ex in examples}
