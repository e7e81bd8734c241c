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


@pytest.fixture
def heldout_of_run(shared_data):
    """A function: (recipe path, its overrides) -> (validation groups, test groups) as the run drew them, so a test
    can score a run's saved model on the texts it was chosen on and on those it was not."""
    from rerank_rl.rl.config import load_recipe
    from rerank_rl.rl.paradigms.classifier.data import load_sets
    from rerank_rl.rl.paradigms.classifier.holdout import split_holdout

    def rebuild(recipe, overrides):
        cfg = load_recipe(recipe, [f"data.root={shared_data}", *overrides])
        sets = load_sets(cfg.data.train, shared_data, cfg.data.train_per_set, cfg.seed)
        _, groups, tests = split_holdout(sets, cfg.data, cfg.seed)
        return groups, tests

    return rebuild


@pytest.fixture
def heldout_score():
    """A function: (model folder, groups, token limit) -> the held-out macro-F1 of the saved model on the groups."""
    from rerank_rl.rl.paradigms.classifier.model import load_model
    from rerank_rl.rl.paradigms.classifier.validate import Validator

    def score(folder, groups, max_length=256):
        return Validator(groups, "minilm", max_length, base={"macro_f1": None})(*load_model(folder))["macro_f1"]

    return score
