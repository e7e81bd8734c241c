"""Fixtures for the classifier tests: a tiny random BERT (fast unit tests) and a handful of labelled texts."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer, saved as a local model folder (milliseconds per step)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rerank_rl.rl.models import default_encoder_path

    import torch

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(default_encoder_path()))
    # Seeded: the weights would otherwise depend on how much of torch's random stream earlier tests used, and the
    # training tests' loss drops vary with the initialisation (0.52-0.86 of the start over 8 seeds, one test wants 0.8).
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture
def toy_sets():
    """Two tiny label sets: a sentiment task and a topic task."""
    sentiment = ["negative", "positive"]
    topic = ["sports", "business", "science"]
    return {
        "sentiment": [
            {"text": "a wonderful, moving film", "label_names": sentiment, "gold_labels": ["positive"]},
            {"text": "dull and far too long", "label_names": sentiment, "gold_labels": ["negative"]},
        ],
        "topic": [
            {"text": "the striker scored twice in the final", "label_names": topic, "gold_labels": ["sports"]},
            {"text": "shares fell after the earnings report", "label_names": topic, "gold_labels": ["business"]},
            {"text": "the probe measured the comet's ice", "label_names": topic, "gold_labels": ["science"]},
        ],
    }


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine a second OpenMP thread makes small models ~5x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
