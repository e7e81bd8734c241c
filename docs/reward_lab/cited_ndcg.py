"""A first try at a reward that pays for grounded reasoning: nDCG@10 plus a bonus per passage the completion cites.
`rerank-rl reward probe` shows the flaw: repeating the answer's entries, or citing ids that do not exist, pays."""

import re

from rerank_rl.rewards import get_reward

_ndcg = get_reward("ndcg@10")


def cited_ndcg(prompts, completions, **columns):
    base = _ndcg(prompts, completions, **columns)
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [None if b is None else b + 0.02 * len(re.findall(r"\[\d+\]", t)) for b, t in zip(base, texts)]
