"""The reward contract: one plain call signature that TRL, the classifier PPO and `reward score` all use.

A reward is any callable

    reward(prompts, completions, **columns) -> list[float | None]

* `completions` holds one entry per sampled completion: a string, or a list of chat messages
  (`[{"role": "assistant", "content": ...}]`, content a string or a list of `{"type": "text", "text": ...}` parts)
  as TRL passes for conversational datasets. `completion_text` turns either into text.
* `prompts` is aligned with `completions` and may be None; built-in rewards do not read it.
* Every dataset column arrives as a keyword argument holding a list aligned with `completions` (`qid`, `doc_ids`,
  `labels`, ...). TRL also passes `completion_ids` and `trainer_state`; rewards accept and ignore every keyword
  they do not use, so new trainer arguments never break them.
* The result has one value per completion. `None` means "this reward does not apply to this row" (for example a
  row of another task in a mixed dataset); TRL skips such values when it sums rewards.
* Rewards never raise on model output: malformed output earns the documented penalty. They do raise ValueError
  (one line, naming the reward and column) when a *column* they need is missing or has the wrong shape, because
  that is a configuration error, not a model error.
* Group-aware rewards (ERank's r_RR, anything comparing rollouts) gather rows by the value of the `qid` column,
  never by position, so shuffling a batch leaves every completion's reward unchanged. The caller must put all
  rollouts of a query into one call (TRL does when a batch holds whole prompt groups).

Built-in rewards are `Reward` objects. Besides being callable as above they offer
`score(prompts, completions, **columns) -> RewardOutput`, which also returns named components (ndcg, recall, js,
format, ...) for logging. The component `format_ok` (1.0 when the output parsed cleanly, else 0.0) is reserved: the
`reward score` command uses it for the share of format failures. `score_with_components` gives the same view of
any reward, plain functions included (they just have no components), and `tap_components` wraps a reward for TRL
so that its components reach a logging callback without scoring twice.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FORMAT_OK",
    "RewardOutput",
    "Reward",
    "completion_text",
    "group_rows",
    "column",
    "score_with_components",
    "tap_components",
]

FORMAT_OK = "format_ok"

Components = dict[str, list[float | None]]


@dataclass
class RewardOutput:
    """Totals (one per completion) plus named per-completion components; a component is None where not measured."""

    totals: list[float | None]
    components: Components = field(default_factory=dict)


def completion_text(completion: Any) -> str:
    """The text of one completion, whether TRL passed a string or a list of chat messages."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        parts = [
            _content_text(m.get("content")) if isinstance(m, dict) else completion_text(m)
            for m in completion
            if not (isinstance(m, dict) and m.get("role") not in (None, "assistant"))
        ]
        return "\n".join(p for p in parts if p)
    return str(completion)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # multimodal parts
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def group_rows(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Row indices per key, in first-seen order: the grouping every group-aware reward uses."""
    groups: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(_hashable(key), []).append(row)
    return groups


def _hashable(key: Any) -> Hashable:
    try:
        hash(key)
        return key
    except TypeError:
        return repr(key)


def column(columns: dict[str, Any], name: str, size: int, reward: str, required: bool = True) -> list:
    """Column `name` as a list of `size` values; a missing optional column reads as all None."""
    values = columns.get(name)
    if values is None:
        if required:
            raise ValueError(f"reward {reward!r} needs the dataset column {name!r} (got: {sorted(columns) or 'none'})")
        return [None] * size
    values = list(values)
    if len(values) != size:
        raise ValueError(f"reward {reward!r}: column {name!r} has {len(values)} values for {size} completions")
    return values


class Reward:
    """Base class of the built-in rewards: subclasses implement `compute(texts, columns) -> RewardOutput`.

    `name` is what TRL logs (it reads `__name__`); `low`/`high` document the range every value falls in."""

    name: str = "reward"
    low: float = 0.0
    high: float = 1.0

    @property
    def __name__(self) -> str:  # TRL names reward columns after this
        return self.name

    def compute(self, texts: list[str], columns: dict[str, Any]) -> RewardOutput:
        raise NotImplementedError

    def score(self, prompts: Sequence | None = None, completions: Sequence | None = None, **columns) -> RewardOutput:
        texts = [completion_text(c) for c in (completions or [])]
        out = self.compute(texts, columns)
        if len(out.totals) != len(texts):
            raise RuntimeError(f"reward {self.name!r} returned {len(out.totals)} values for {len(texts)} completions")
        return out

    def __call__(self, prompts: Sequence | None = None, completions: Sequence | None = None, **columns):
        return self.score(prompts, completions, **columns).totals

    def __repr__(self) -> str:
        return f"<reward {self.name} in [{self.low}, {self.high}]>"


def score_with_components(
    reward: Callable, prompts: Sequence | None, completions: Sequence, **columns
) -> tuple[list[float | None], Components]:
    """(totals, components) for any reward: built-ins report their components, plain functions none."""
    if isinstance(reward, Reward) or callable(getattr(reward, "score", None)):
        out = reward.score(prompts, completions, **columns)
        return list(out.totals), dict(out.components)
    totals = reward(prompts=prompts, completions=completions, **columns)
    totals = [None if v is None else float(v) for v in totals]
    if len(totals) != len(completions):
        name = getattr(reward, "__name__", repr(reward))
        raise RuntimeError(f"reward {name!r} returned {len(totals)} values for {len(completions)} completions")
    return totals, {}


def tap_components(reward: Callable, sink: Callable[[str, Components], None]) -> Callable:
    """A TRL-callable reward that also hands `(reward name, components)` to `sink` on every call."""
    name = getattr(reward, "__name__", "reward")

    def tapped(prompts=None, completions=None, **columns):
        totals, components = score_with_components(reward, prompts, completions, **columns)
        sink(name, components)
        return totals

    tapped.__name__ = name
    return tapped
