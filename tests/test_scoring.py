"""Slot scoring (rl/scoring.py): the constrained pass must read the same distributions a plain forward pass over the
whole answer-so-far reads, for batches of prompts of different lengths and window sizes."""

from __future__ import annotations

import numpy as np
import pytest

from rerank_rl.data_synthesis.builtin import generate_examples
from rerank_rl.rl.paradigms import groupwise
from rerank_rl.rl.scoring import SlotScorer, slot_chunk, _score_distribution


def test_score_distribution_splits_one_into_one_and_ten():
    digits = np.zeros((1, 10))
    digits[0, 1], digits[0, 7] = 0.5, 0.5
    probs = _score_distribution(digits, np.array([0.8]))
    assert probs[0, 10] == pytest.approx(0.4) and probs[0, 1] == pytest.approx(0.1) and probs[0, 7] == 0.5
    assert probs[0] @ np.arange(11) == pytest.approx(0.4 * 10 + 0.1 + 3.5)
    # mass on non-digit tokens is dropped by renormalising over the digits
    assert _score_distribution(np.full((1, 10), 0.01), np.array([0.0]))[0].sum() == pytest.approx(1.0)


def _reference(model, tokenizer, conversation, size):
    """Slot by slot without a cache: feed prompt + skeleton + greedy scores so far, read the digit distribution,
    then feed a trial "1" to read P("0" | "1")."""
    import torch

    prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    digit_ids = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    out = []
    for slot in range(1, size + 1):
        ids = ids + tokenizer(slot_chunk(slot), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids + [digit_ids[1]]])).logits[0].float()
        digits = torch.softmax(logits[-2], -1)[digit_ids].double().numpy()[None]
        ten = np.array([torch.softmax(logits[-1], -1)[digit_ids[0]].item()])
        probs = _score_distribution(digits, ten)[0]
        greedy = int(probs.argmax())
        out.append((greedy, float(probs @ np.arange(11))))
        ids = ids + [digit_ids[int(c)] for c in str(greedy)]
    return out


def test_slot_scores_match_an_uncached_pass(default_lm_path):
    """The real model (a random tiny one answers one score everywhere, which would not exercise the re-feeding)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_lm_path)
    model = AutoModelForCausalLM.from_pretrained(default_lm_path)
    examples = generate_examples(3, candidates=6, seed=3)
    conversations, sizes = [], []
    for ex, size in zip(examples, (6, 3, 5)):
        conversations.append(groupwise.build_messages(ex["query"], ex["doc_texts"][:size], "answer_only", 40 + 10 * size))
        sizes.append(size)
    scored = SlotScorer(model, tokenizer, batch_size=3)(conversations, sizes)
    for conversation, size, got in zip(conversations, sizes, scored):
        want = _reference(model, tokenizer, conversation, size)
        assert [g for g, _ in got] == [g for g, _ in want]
        assert [e for _, e in got] == pytest.approx([e for _, e in want], abs=1e-4)
    assert len({g for row in scored for g, _ in row}) > 1  # the check covered more than one chosen score

    # single-passage windows of one query: a long shared prefix (system prompt and query) runs once for the batch
    ex = examples[0]
    singles = [groupwise.build_messages(ex["query"], [text], "answer_only", 80) for text in ex["doc_texts"][:4]]
    shared = SlotScorer(model, tokenizer, batch_size=4)(singles, [1] * 4)
    unshared = SlotScorer(model, tokenizer, batch_size=4, share_prefix=False)(singles, [1] * 4)
    for conversation, got, plain in zip(singles, shared, unshared):
        want = _reference(model, tokenizer, conversation, 1)
        assert got[0][0] == want[0][0] and got[0][1] == pytest.approx(want[0][1], abs=1e-4)
        assert got[0][1] == pytest.approx(plain[0][1], abs=1e-4)


def test_shared_prefix_length():
    from rerank_rl.rl.scoring import _shared_length

    assert _shared_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert _shared_length([[1, 2], [1, 2]]) == 2 and _shared_length([[7, 1], [1, 2]]) == 0


def test_expected_scoring_ranks_through_the_paradigm(tiny_lm_path):
    from rerank_rl.rl.generation import load_hf_generator

    examples = generate_examples(2, candidates=6, seed=4)
    generator = load_hf_generator(str(tiny_lm_path), batch_size=4)
    stats: dict = {}
    run = groupwise.rank_candidates(examples, generator, window=4, stride=2, max_chars=60, stats=stats,
                                    scoring="expected")
    assert set(run) == {ex["qid"] for ex in examples}
    assert stats["windows"] == 4 and stats["unscored_passages"] == 0  # the skeleton is never malformed
    assert sum(stats["score_counts"].values()) == stats["passages"] == 16
    with pytest.raises(ValueError, match="reasoning variant needs scoring 'greedy'"):
        groupwise.rank_candidates(examples, generator, variant="reasoning", scoring="expected")
