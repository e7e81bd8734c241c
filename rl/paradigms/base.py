"""The `Paradigm` protocol: everything that differs between families of LLM rerankers, in one object.

Stages (data, SFT, RL, evaluate, export), serving, probes and synthesis traces call only these members, so a new
paradigm is one module holding a `Paradigm` subclass and its recipe schema, plus one line in `paradigms/__init__.py`.

What a paradigm owns:
* its recipe schema (`recipe`: variant and evaluate section with its inference settings);
* prompts: `build_messages(query, passages, variant, max_chars)` -> chat messages; a message's content is a string
  or a list of content parts (`{"type": "text", ...}`, `{"type": "image", ...}`) so images fit;
* SFT targets: `gold_answer(labels, variant, max_grade, teacher_scores)`;
* RL rows: `rl_rows(groups, config)`, carrying the columns in `reward_columns` that its rewards read;
* the output format its answers follow (`answer_format`, a parser name of `rewards.formats.PARSERS`): rewards that
  read another format are refused when the recipe loads (`check_reward_formats`);
* decoding: `max_new_tokens(num_passages, variant)`;
* inference: `inference_settings(config)` (written to the export's bundle), `check_settings`, and
  `rank(examples, generate, settings, stats)` -> {qid: [(doc_id, score)]};
* `bundle_fields(config)`: what serving needs to reproduce training-time formatting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

RANKING_COLUMNS = ("qid", "source_qid", "doc_ids", "labels", "first_stage_scores")


class Paradigm:
    name = ""
    prompt_version = ""
    answer_format = ""
    variants: tuple[str, ...] = ("answer_only", "reasoning")
    default_rewards: dict[str, float] = {}
    reward_columns: tuple[str, ...] = RANKING_COLUMNS
    example_passages: tuple = ("<passage 1>", "<passage 2>")  # what the bundle's prompt example shows
    recipe: type | None = None  # the recipe schema (a dataclass registered with rl.config.register_schema)
    # Training probes (rl/probe.py) read mean 0-10 scores per grade from one-window rankings, built for groupwise
    # answers; recipes of a paradigm without this refuse evaluate.probe_every (RerankerRecipe.validate).
    supports_probes: bool = False

    # --- prompts and answers -------------------------------------------------------------------------------------
    def build_messages(self, query: str, passages: Sequence, variant: str = "answer_only",
                       max_chars: int = 400) -> list[dict]:
        raise NotImplementedError

    def gold_answer(self, labels: Sequence[int], variant: str = "answer_only", max_grade: int = 3,
                    teacher_scores: Sequence[float] | None = None) -> str:
        raise NotImplementedError

    def parse(self, completion: str, num_passages: int):
        raise NotImplementedError

    def max_new_tokens(self, num_passages: int, variant: str) -> int:
        raise NotImplementedError

    def check_variant(self, variant: str) -> None:
        if variant not in self.variants:
            raise ValueError(f"unknown {self.name} variant {variant!r} (choose from {', '.join(self.variants)})")

    # --- training rows -------------------------------------------------------------------------------------------
    whole_lists_per_step = False  # True: an RL step must hold every row of a list (`qid`), in one reward call

    def training_units(self, groups: list[dict]) -> list[dict]:
        """What one training prompt holds, from the sampled groups (the data stage saves these units)."""
        return groups

    def sft_rows(self, groups, config) -> list[dict]:
        """{"prompt": messages, "completion": [assistant message]} per training group (built-in gold teacher)."""
        max_grade = max(3, max(max(labels) for labels in groups["labels"]) or 1)
        return [{"prompt": self.build_messages(g["query"], g["doc_texts"], config.variant, config.data.max_doc_chars),
                 "completion": [{"role": "assistant", "content": self.gold_answer(
                     g["labels"], config.variant, max_grade=max_grade, teacher_scores=g.get("teacher_scores"))}]}
                for g in groups]

    def rl_rows(self, groups, config):
        """The RL dataset: a `prompt` column (chat messages) plus the `reward_columns` that TRL passes to rewards."""
        prompts = [self.build_messages(g["query"], g["doc_texts"], config.variant, config.data.max_doc_chars)
                   for g in groups]
        keep = [c for c in self.reward_columns if c in groups.column_names]
        return groups.select_columns(keep).add_column("prompt", prompts)

    # --- inference -----------------------------------------------------------------------------------------------
    def inference_settings(self, config) -> dict:
        raise NotImplementedError

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """ValueError (one line) when settings cannot rank, raised before any weights load."""

    def rank(self, examples: Sequence[dict], generate: Callable, settings: Mapping[str, Any],
             stats: dict | None = None) -> dict[str, list[tuple[str, float]]]:
        raise NotImplementedError

    def describe_answers(self, answers: dict) -> str:
        return ", ".join(f"{k}: {v}" for k, v in answers.items())

    def bundle_fields(self, config) -> dict:
        """Bundle entries beyond the common ones (paradigm, variant, base model, dtype, inference settings)."""
        settings = self.inference_settings(config)
        return {"prompt_version": self.prompt_version,
                "prompt_example": self.build_messages("<query>", list(self.example_passages), config.variant),
                "answer_format": self.answer_format,
                "parser": f"rerank_rl.rewards.formats:PARSERS[{self.answer_format!r}]",
                "decoding": {"do_sample": False, "max_new_tokens": settings.get("decode_budget")
                             or f"{type(self).__module__}:max_new_tokens"}}

    # Upper-case names of the module-level interface this protocol replaced (kept for callers written against it).
    @property
    def PROMPT_VERSION(self) -> str:  # noqa: N802
        return self.prompt_version

    @property
    def ANSWER_FORMAT(self) -> str:  # noqa: N802
        return self.answer_format


def reward_format(reward) -> str | None:
    """The answer format a built reward reads (`answer_format`), None when it reads none (a plain function, the
    tag-only `format` reward): those are accepted by every paradigm."""
    return getattr(reward, "answer_format", None)


def check_reward_formats(paradigm: Paradigm, rewards: Mapping[str, Any]) -> None:
    """ValueError naming the first reward of `rewards` ({spec: weight or options}) whose answer format is not the
    paradigm's: such a reward scores every completion as malformed, or reads the wrong thing."""
    from rerank_rl.rewards.registry import combine_rewards

    try:
        parts = combine_rewards(rewards).parts
    except ValueError as err:
        raise ValueError(f"rl.rewards: {err}") from None
    for spec, reward, _ in parts:
        fmt = reward_format(reward)
        if fmt is not None and fmt != paradigm.answer_format:
            suggested = ", ".join(paradigm.default_rewards) or "a reward of that format"
            raise ValueError(f"rl.rewards: {spec!r} reads {fmt!r} answers, but the {paradigm.name} paradigm writes "
                             f"{paradigm.answer_format!r} answers (use {suggested})")
