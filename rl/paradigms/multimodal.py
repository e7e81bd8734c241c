"""Multimodal listwise reranking (MM-R5): one prompt holds a question and N page images, and the model answers a
permutation of the image ids, most relevant first, optionally after reasoning about each image.

    <think>Image 2 shows what the question asks about. Image 1 ...</think>      (reasoning variant only)
    <answer>[2, 1, 3]</answer>

A candidate's "text" is the path of its page image (data_synthesis/vidore.py; a rank_llm file whose `content` fields
are image paths works alike). Prompts carry the images as content parts `{"type": "image", "image": path}`; for
TRL the training rows hold bare placeholders and an `images` column (rl/vlm.py), and the model must be a
vision-language model (`model.name: tiny-vlm` in tests, a real VLM by changing that key).

Inference reranks a list longer than `window` the RankGPT way: windows of `window` images from the bottom of the
first-stage list to its top, `stride` apart, each reordered by the model's permutation, so strong pages rise. An
answer is read leniently (ids repeated or out of range dropped, ids left out kept in the shown order after the named
ones); an answer with no ids keeps the window as it was and is counted.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rerank_rl.rewards.parsers import parse_permutation
from rerank_rl.rl.config import register_schema
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms.base import Paradigm
from rerank_rl.rl.recipe import DataSection, ModelSection, RerankerRecipe, RLSection

_SYSTEM = "Rank the page images by how well they answer the question, most relevant first."
_FORMAT = {
    "reasoning": "Say briefly what each image shows in <think></think>, then reply <answer>[2, 1, 3]</answer> "
                 "with every image id once.",
    "answer_only": "Reply only <answer>[2, 1, 3]</answer> with every image id once.",
}
_TAGS = {"reasoning": ("think", "answer"), "answer_only": ("answer",)}


class Multimodal(Paradigm):
    name = "multimodal"
    prompt_version = "multimodal-v1"
    answer_format = "permutation"
    variants = tuple(_FORMAT)
    default_rewards = {"mm_r5": 1.0, "mm_r5_answer_only": 1.0}
    reward_columns = ("qid", "source_qid", "doc_ids", "labels")
    example_passages = ("<image 1>", "<image 2>")

    @property
    def recipe(self):
        return MultimodalRecipe

    def build_messages(self, query, passages, variant="answer_only", max_chars=400):
        """System and user turns as content parts; `passages` are page images (paths or PIL images)."""
        self.check_variant(variant)
        parts = [{"type": "text", "text": f"Question: {query}\n"}]
        for i, image in enumerate(passages, start=1):
            parts += [{"type": "text", "text": f"Image {i}: "}, {"type": "image", "image": image},
                      {"type": "text", "text": "\n"}]
        parts.append({"type": "text", "text": f"Rank images [1] to [{len(passages)}]."})
        return [{"role": "system", "content": [{"type": "text", "text": f"{_SYSTEM} {_FORMAT[variant]}"}]},
                {"role": "user", "content": parts}]

    def gold_answer(self, labels, variant="answer_only", max_grade=3, teacher_scores=None):
        """Every id, by teacher score where given, else by grade (prompt order among equals); the reasoning variant
        first says in one short line per image how far it helps (MM-R5's SFT traces explain each image)."""
        values = list(teacher_scores) if teacher_scores is not None else list(labels)
        order = sorted(range(len(values)), key=lambda i: (-values[i], i))
        answer = f"<answer>[{', '.join(str(i + 1) for i in order)}]</answer>"
        if variant == "answer_only":
            return answer
        top = max(values, default=0)
        notes = [f"Image {i + 1} " + ("shows what the question asks." if values[i] == top and top > 0 else
                                      "is related." if values[i] > 0 else "does not help.") for i in order]
        return f"<think>{' '.join(notes)}</think>\n{answer}"

    def parse(self, completion, num_passages, variant="answer_only"):
        """The full order (1-based ids, best first) an answer implies, None when it names no id in range."""
        parsed = parse_permutation(completion, _TAGS.get(variant, ("answer",)))
        named = [i for i in dict.fromkeys(parsed.value or ()) if 1 <= i <= num_passages]
        if not parsed.ok or not named:
            return None
        return named + [i for i in range(1, num_passages + 1) if i not in named]

    def max_new_tokens(self, num_passages, variant):
        # `<answer>[12, 3, ...]</answer>`: about 2 tokens per id plus 8 for the tags; a line per image to think
        return 8 + 3 * num_passages + (16 * num_passages if variant == "reasoning" else 0)

    # --- training rows: placeholders in the prompt, the pages in an `images` column (what TRL expects) --------
    def sft_rows(self, groups, config):
        rows = super().sft_rows(groups, config)
        return _with_images([r["prompt"] for r in rows], {"completion": [r["completion"] for r in rows]})

    def rl_rows(self, groups, config):
        prompts = [self.build_messages(g["query"], g["doc_texts"], config.variant) for g in groups]
        keep = [c for c in self.reward_columns if c in groups.column_names]
        return _with_images(prompts, groups.select_columns(keep).to_dict())

    # --- inference -----------------------------------------------------------------------------------------------
    def inference_settings(self, config) -> dict:
        section = config.evaluate
        budget = config.rl.max_completion_length if config.variant == "reasoning" else None
        return {"window": section.window, "stride": section.stride, "fusion_weight": None,
                "max_doc_chars": config.data.max_doc_chars, "batch_size": section.batch_size,
                "decode_budget": budget}

    def check_settings(self, settings) -> None:
        if settings["window"] < 2:
            raise ValueError(f"window must hold at least 2 images to order, got {settings['window']}")
        if not 1 <= settings["stride"] <= settings["window"]:
            raise ValueError(f"stride must be between 1 and window ({settings['window']}), got {settings['stride']}")

    def rank(self, examples, generate, settings, stats=None):
        if settings.get("fusion_weight") is not None:
            raise UserError("the multimodal paradigm ranks by permutations and has no scores to fuse: "
                            "use --fusion none")
        self.check_settings(settings)
        variant, window, stride = settings["variant"], settings["window"], settings["stride"]
        budget = settings.get("decode_budget") or self.max_new_tokens(window, variant)
        order = {ex["qid"]: list(range(len(ex["doc_ids"]))) for ex in examples}
        schedule = {ex["qid"]: window_starts(len(ex["doc_ids"]), window, stride) for ex in examples}
        answers, digest = Counter(), hashlib.sha1()
        # one window per list per round, all lists together: a round's prompts go to the model in one call
        for step in range(max((len(s) for s in schedule.values()), default=0)):
            jobs = [(ex, schedule[ex["qid"]][step]) for ex in examples if step < len(schedule[ex["qid"]])]
            jobs = [(ex, start) for ex, start in jobs if len(ex["doc_ids"]) > 1]
            shown = [order[ex["qid"]][start:start + window] for ex, start in jobs]
            prompts = [self.build_messages(ex["query"], [ex["doc_texts"][p] for p in members], variant)
                       for (ex, _), members in zip(jobs, shown)]
            for (ex, start), members, text in zip(jobs, shown, generate(prompts, budget) if prompts else []):
                digest.update(text.encode() + b"\0")
                ids = self.parse(text, len(members), variant)
                answers["prompts"] += 1
                answers["passages"] += len(members)
                if ids is None:
                    answers["unparsed"] += 1
                    continue
                answers["complete"] += _names_every_id(text, len(members), variant)
                answers["kept_order"] += ids == list(range(1, len(members) + 1))
                order[ex["qid"]][start:start + len(members)] = [members[i - 1] for i in ids]
        if stats is not None:
            stats.update({"window": window, **{k: answers.get(k, 0) for k in
                                                ("prompts", "passages", "unparsed", "complete", "kept_order")},
                          # a reload of the export must answer alike, text for text, not only parse alike
                          "completions_sha1": digest.hexdigest()})
        # final rank -> score in (0, 1], best first
        return {ex["qid"]: [(ex["doc_ids"][p], 1.0 - r / len(ex["doc_ids"])) for r, p in enumerate(order[ex["qid"]])]
                for ex in examples}

    def describe_answers(self, answers):
        return (f"{answers['prompts']} multimodal prompts of up to {answers['window']} images; {answers['unparsed']} "
                f"answers unreadable (window kept as shown); {answers['complete']} named every image once; "
                f"{answers['kept_order']} kept the shown order.")


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Start of each window, bottom of the list first, the last one at the top (RankGPT's sliding pass)."""
    if n <= window:
        return [0]
    return list(range(n - window, 0, -stride)) + [0]


def _names_every_id(text: str, n: int, variant: str) -> bool:
    ids = parse_permutation(text, _TAGS.get(variant, ("answer",))).value or []
    return sorted(ids) == list(range(1, n + 1))


def _with_images(prompts: list[list[dict]], columns: dict):
    """A Dataset of `prompts` (image parts as bare placeholders), the other `columns`, and an `images` column that
    holds each prompt's page images (decoded from their paths when a row is read, never copied)."""
    from datasets import Dataset, Image, List

    from rerank_rl.rl.vlm import split_images

    split = [split_images(p) for p in prompts]
    images = [[str(ref) for ref in refs] for _, refs in split]
    missing = next((ref for refs in images for ref in refs if not Path(ref).exists()), None)
    if missing:
        raise UserError(f"page image {missing} not found (the multimodal paradigm's candidates are image paths)")
    data = Dataset.from_dict({**columns, "prompt": [p for p, _ in split], "images": images})
    return data.cast_column("images", List(Image()))


@dataclass
class MultimodalEvalSection:
    enabled: bool = True
    before_training: bool = True
    window: int = 10  # page images per prompt (MM-R5 orders a retriever's short list in one prompt)
    stride: int = 5
    batch_size: int = 4
    metrics: list[str] = field(default_factory=lambda: ["ndcg@10", "ndcg@5", "mrr@10", "recall@1", "recall@5"])
    # Training probes read groupwise answers only (RerankerRecipe.validate).
    probe_every: int = 0
    probe_queries: int = 0

    def validate(self) -> None:
        PARADIGM.check_settings({"window": self.window, "stride": self.stride})


@dataclass
class MultimodalModelSection(ModelSection):
    name: str = "tiny-vlm"  # a vision-language model: the offline random-weight one, a local folder, or a hub id


@dataclass
class MultimodalRLSection(RLSection):
    rewards: dict = field(default_factory=lambda: {"mm_r5_answer_only": 1.0})
    num_generations: int = 4  # MM-R5: 4 generations
    learning_rate: float = 1e-5


@dataclass
class MultimodalDataSection(DataSection):
    group_sizes: list[int] = field(default_factory=lambda: [4])  # images per training prompt


_IMAGE_SOURCES = ("vidore", "rank_llm", "dataset")  # sources whose candidate texts can be image paths


@dataclass
@register_schema("multimodal")
class MultimodalRecipe(RerankerRecipe):
    paradigm: Literal["multimodal"] = "multimodal"
    name: str = "mm-r5"
    variant: Literal["answer_only", "reasoning"] = "answer_only"
    model: MultimodalModelSection = field(default_factory=MultimodalModelSection)
    data: MultimodalDataSection = field(default_factory=MultimodalDataSection)
    rl: MultimodalRLSection = field(default_factory=MultimodalRLSection)
    evaluate: MultimodalEvalSection = field(default_factory=MultimodalEvalSection)

    def validate(self) -> None:
        self.check_answer_only_reward("mm_r5", "<think> and <answer>", "a format reward of 0")
        if self.sft.loss != "tokens" or self.sft.teacher != "gold" or self.synthesize is not None:
            raise ValueError("sft: the multimodal paradigm trains on gold orders of page images (sft.loss: tokens, "
                             "sft.teacher: gold, no synthesize section); slots and synthesized traces read text")
        for key, source in [*((f"data.train[{i}]", s) for i, s in enumerate(self.data.train)),
                            ("data.eval", self.data.eval)]:
            if source.format not in _IMAGE_SOURCES:
                raise ValueError(f"{key}: the multimodal paradigm ranks page images, and format {source.format!r} "
                                 f"gives text passages (use {', '.join(_IMAGE_SOURCES)})")
        folder = Path(self.model.name).expanduser()
        if (folder / "config.json").exists():
            from rerank_rl.rl.vlm import is_vision_language

            if not is_vision_language(folder):
                raise ValueError(f"model.name: {folder} is not a vision-language model (its config.json has no "
                                 "vision_config); the multimodal paradigm needs one, e.g. tiny-vlm")
        super().validate()


PARADIGM = Multimodal()
