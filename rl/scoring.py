"""Read a groupwise answer's scores from the model's token distributions instead of its sampled text.

The answer format is fixed (`<answer>{"[1]": s1, "[2]": s2, ...}</answer>`), so nothing but the scores needs
decoding: the skeleton is fed to the model and, at each score slot, the distribution over the score's first digit is
read off in one forward pass per slot (free generation needs about eight per passage). The tokenizer writes numbers
digit by digit, so "1" opens both 1 and 10; the same pass also feeds a trial "1" and reads P("0" | "1"), which
splits that mass between the two. The trial token is then cropped from the key/value cache and the chosen score is
fed in its place.

Per passage this gives two readings of the model:
  greedy    the most probable score of 0..10 (what greedy decoding of the answer would write);
  expected  the expected score under the model's distribution over 0..10 (a passage the model is unsure about
            scores between its candidate answers, which breaks the ties a 0-10 scale makes on every list).
Later slots are conditioned on the greedy scores of earlier ones, as they are when the answer is generated.

Prompts of one batch share their opening tokens (the system prompt, and for the windows of one query its text): that
prefix runs once and its key/value cache is copied to every row. With single-passage windows the prefix is close to
half of every prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCORES = np.arange(11, dtype=np.float64)


def digit_token_ids(tokenizer) -> list[int]:
    """Token ids of "0".."9". Slots are read (and trained) one digit token at a time, so the tokenizer must write
    numbers digit by digit (10 -> '1', '0'); ValueError otherwise."""
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    if tokenizer("10", add_special_tokens=False)["input_ids"] != [digits[1], digits[0]]:
        raise ValueError("slot scoring needs a tokenizer that writes numbers digit by digit (10 -> '1', '0'); "
                         "use scoring: greedy for this model")
    return digits


def left_pad(rows: Sequence[Sequence[int]], value: int) -> tuple[list[list[int]], list[list[int]]]:
    """Rows padded on the left to the longest, and their attention masks. Left padding ends every row at the last
    position, where the next token (or a score slot) is read."""
    width = max(map(len, rows))
    return ([[value] * (width - len(r)) + list(r) for r in rows],
            [[0] * (width - len(r)) + [1] * len(r) for r in rows])


def slot_chunk(index: int) -> str:
    """The skeleton text between the previous score and score `index` (1-based)."""
    return f'<answer>{{"[{index}]": ' if index == 1 else f', "[{index}]": '


class SlotScorer:
    """Scores every passage of groupwise prompts in one constrained pass. `__call__(conversations, sizes)` returns,
    per conversation, a list of (greedy, expected) pairs on the 0-10 scale."""

    def __init__(self, model, tokenizer, batch_size: int = 8, progress: bool = False, share_prefix: bool = True):
        self.model, self.tokenizer, self.batch_size, self.progress = model, tokenizer, batch_size, progress
        self.share_prefix = share_prefix
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.digit_ids = digit_token_ids(tokenizer)
        self._chunks: dict[int, list[int]] = {}

    def chunk_ids(self, index: int) -> list[int]:
        if index not in self._chunks:
            self._chunks[index] = self.tokenizer(slot_chunk(index), add_special_tokens=False)["input_ids"]
        return self._chunks[index]

    def __call__(self, conversations: Sequence[list[dict]], sizes: Sequence[int]) -> list[list[tuple[int, float]]]:
        import torch
        from tqdm.auto import tqdm

        texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in conversations]
        prompts = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        # Same-size windows share a slot schedule; then the windows of one query sit together (a long shared
        # prefix), and sorting by length keeps padding small.
        order = sorted(range(len(prompts)), key=lambda i: (sizes[i], prompts[i][:_GROUP_TOKENS], len(prompts[i])))
        batches = []
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            for size in sorted({sizes[i] for i in idx}):
                batches.append([i for i in idx if sizes[i] == size])
        results: list[list[tuple[int, float]]] = [[] for _ in prompts]
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            for idx in tqdm(batches, desc="score", unit="batch", disable=not self.progress):
                for i, row in zip(idx, self._score_batch([prompts[i] for i in idx], sizes[idx[0]])):
                    results[i] = row
        if was_training:
            self.model.train()
        return results

    def _forward(self, rows: list[list[int]], state: dict):
        """Feed one list of new tokens per row (left-padded to a common length); returns logits of the last two
        positions, (batch, 2, vocab) as float."""
        import torch

        device = self.model.device  # a GPU model reads GPU tensors
        ids, new_mask = (torch.tensor(t, device=device) for t in left_pad(rows, self.tokenizer.pad_token_id))
        mask = new_mask if state["mask"] is None else torch.cat([state["mask"], new_mask], dim=1)
        start = state["positions"]
        positions = (start.unsqueeze(1) + new_mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=state["cache"], use_cache=True, logits_to_keep=2)
        state.update(cache=out.past_key_values, mask=mask, positions=start + new_mask.sum(dim=1))
        return out.logits.float()

    def _crop_last(self, state: dict) -> None:
        """Remove the trial "1" fed at the end of the last step from the cache, mask and positions."""
        state["cache"].crop(-1)
        state["mask"] = state["mask"][:, :-1]
        state["positions"] = state["positions"] - 1

    def _score_batch(self, prompts: list[list[int]], size: int) -> list[list[tuple[int, float]]]:
        import torch

        one, rows = self.digit_ids[1], len(prompts)
        shared = _shared_length(prompts) if self.share_prefix and rows > 1 else 0
        state = {"cache": None, "mask": None, "positions": torch.zeros(1 if shared else rows, dtype=torch.long,
                                                                        device=self.model.device)}
        if shared:
            self._forward([prompts[0][:shared]], state)
            state["cache"].batch_repeat_interleave(rows)
            state["mask"] = state["mask"].repeat(rows, 1)
            state["positions"] = state["positions"].repeat(rows)
        feed = [p[shared:] + self.chunk_ids(1) + [one] for p in prompts]
        scores: list[list[tuple[int, float]]] = [[] for _ in prompts]
        for slot in range(1, size + 1):
            logits = self._forward(feed, state)
            digits = torch.softmax(logits[:, 0, :], dim=-1)[:, self.digit_ids].double().cpu().numpy()
            ten = torch.softmax(logits[:, 1, :], dim=-1)[:, self.digit_ids[0]].double().cpu().numpy()
            self._crop_last(state)
            probs = _score_distribution(digits, ten)
            greedy = probs.argmax(axis=1)
            for row, (g, p) in enumerate(zip(greedy, probs)):
                scores[row].append((int(g), float(p @ SCORES)))
            if slot < size:
                nxt = self.chunk_ids(slot + 1) + [one]
                feed = [self._digits(int(g)) + nxt for g in greedy]
        return scores

    def _digits(self, score: int) -> list[int]:
        return [self.digit_ids[int(c)] for c in str(score)]


_GROUP_TOKENS = 96  # enough to hold the system prompt and a query: sorting on it puts one query's windows together


def _shared_length(prompts: list[list[int]]) -> int:
    """Length of the token prefix every prompt starts with."""
    first, length = prompts[0], min(len(p) for p in prompts)
    for p in prompts[1:]:
        length = next((i for i in range(length) if p[i] != first[i]), length)
    return length


def _score_distribution(digits: np.ndarray, ten: np.ndarray) -> np.ndarray:
    """(batch, 11) probabilities of the scores 0..10 from first-digit probabilities (batch, 10) and P("0" | "1"),
    renormalised over the digits (mass on non-digit tokens is a format slip the constrained pass never makes)."""
    probs = np.zeros((digits.shape[0], 11))
    probs[:, :10] = digits
    probs[:, 1] = digits[:, 1] * (1.0 - ten)
    probs[:, 10] = digits[:, 1] * ten
    total = probs.sum(axis=1, keepdims=True)
    return probs / np.where(total > 0, total, 1.0)
