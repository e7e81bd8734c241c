"""Held-out-label validation: which labels leave training, which texts validate, how the figure is averaged, and
that a stage keeps its best validated checkpoint (not its last); L2-SP; label variants and distinct-label counts."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms.classifier.config import DataConfig, ModelConfig, PPOConfig, SupervisedConfig
from rerank_rl.rl.paradigms.classifier.data import LabelSetSampler, label_names
from rerank_rl.rl.paradigms.classifier.holdout import split_holdout
from rerank_rl.rl.paradigms.classifier.model import build_model
from rerank_rl.rl.paradigms.classifier.validate import Selection, heldout_figure


def _intents(n_labels=10, per_label=6):
    names = [f"intent {i}" for i in range(n_labels)]
    return [{"text": f"text {i} {j}", "label_names": names, "gold_labels": [name]}
            for i, name in enumerate(names) for j in range(per_label)]


def test_split_holds_out_whole_labels_and_sets():
    topics = ["war", "sport", "money"]
    sets = {"intents": _intents(), "topics": [{"text": f"t{i}", "label_names": topics, "gold_labels": [topics[i % 3]]}
                                              for i in range(9)],
            "small": [{"text": "x", "label_names": ["yes", "no"], "gold_labels": ["yes"]}]}
    cfg = DataConfig(train=list(sets), holdout_labels={"intents": 0.3}, holdout_sets=["topics"], holdout_examples=4,
                     holdout_test_examples=40, max_labels=2)
    train, groups, tests = split_holdout(sets, cfg, seed=0)
    assert "topics" not in train and train["small"] == sets["small"]  # held out whole; not named
    trained = set(label_names(train["intents"]))
    held = set(label_names(sets["intents"])) - trained
    assert len(held) == 3 and len(trained) == 7
    # No training text carries a held-out label, as gold or as an offered negative.
    assert all(set(r["gold_labels"]) <= trained and set(r["label_names"]) <= trained for r in train["intents"])
    # Validation groups: chunks of at most max_labels held-out labels (3 -> 2 + 1, the one-label chunk dropped),
    # and the whole held-out set in chunks (3 -> 2 + 1, again one dropped).
    assert sorted(groups) == ["intents#1", "topics#1"]
    for rows in groups.values():
        offered = rows[0]["label_names"]
        assert len(offered) == 2 and all(r["label_names"] == offered and set(r["gold_labels"]) <= set(offered)
                                         for r in rows)
    assert set(groups["intents#1"][0]["label_names"]) <= held
    # Test texts: the same groups' other texts (the choice never sees them), all that are left when few.
    assert sorted(tests) == ["intents#1", "topics#1"]
    for name, rows in tests.items():
        assert rows[0]["label_names"] == groups[name][0]["label_names"]
        assert not {r["text"] for r in rows} & {r["text"] for r in groups[name]}
    # 4 validation texts per set over its 2 chunks (2 each); 2 labels x 6 texts leave 10 to test on
    assert len(groups["intents#1"]) == 2 and len(tests["intents#1"]) == 10
    # A group with fewer texts than validation and test ask for splits them in halves: the test figure is not
    # left with the few texts validation did not take.
    few = DataConfig(**{**cfg.__dict__, "holdout_examples": 40, "holdout_test_examples": 40})
    small_groups, small_tests = split_holdout(sets, few, seed=0)[1:]
    assert len(small_groups["intents#1"]) == 6 and len(small_tests["intents#1"]) == 6  # 12 texts, 6 and 6
    assert split_holdout(sets, DataConfig(**{**cfg.__dict__, "holdout_test_examples": 0}), seed=0)[2] == {}
    # The same seed holds out the same labels; another seed others.
    assert split_holdout(sets, cfg, seed=0)[1] == groups
    other = {label for s in range(1, 5) for label in split_holdout(sets, cfg, seed=s)[1]["intents#1"][0]["label_names"]}
    assert other - held


def test_heldout_figure_averages_groups_within_a_set_then_sets():
    results = {"a#1": {"macro_f1": 0.2}, "a#2": {"macro_f1": 0.4}, "a#3": {"macro_f1": 0.6}, "b#1": {"macro_f1": 1.0}}
    figure = heldout_figure(results)
    assert figure["sets"] == {"a": pytest.approx(0.4), "b": 1.0} and figure["macro_f1"] == pytest.approx(0.7)


class ScriptedValidator:
    """Stands in for the held-out validator: returns the given figures in turn and remembers the weights it saw."""

    def __init__(self, figures):
        self.figures, self.base, self.seen = list(figures), {"macro_f1": 0.5}, []

    def run(self, model, tokenizer):  # (figure, no per-text decisions: no bootstrap)
        self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"macro_f1": self.figures.pop(0), "sets": {}}, None


def _saved(folder):
    return load_file(str(folder / "model.safetensors"))


def _same(saved, weights):
    return all(torch.equal(saved[k], weights[k]) for k in saved if k in weights)


def test_supervised_keeps_the_best_validated_checkpoint_not_the_last(tiny_encoder, toy_sets, tmp_path):
    from rerank_rl.rl.paradigms.classifier.supervised import train_supervised

    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, dropout=0.0))
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=4, other_negatives=1), seed=0)
    # Validated at steps 0, 2, 4, 6: step 2 is the best, the later checkpoints are worse.
    validator = ScriptedValidator([0.1, 0.7, 0.3, 0.2])
    cfg = SupervisedConfig(steps=6, batch_size=4, lr=3e-3, head_lr=3e-3, log_every=2, save_every=0,
                           validate_every=2, distill_weight=0.0)
    _, summary = train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path, log=lambda _: None,
                                  validator=validator)
    assert summary["heldout"]["chosen_step"] == 2 and summary["heldout"]["macro_f1"] == 0.7
    assert [h["step"] for h in summary["heldout"]["history"]] == [0, 2, 4, 6]
    assert summary["heldout"]["base_encoder"] == 0.5 and summary["heldout"]["at_or_above_base"]
    assert _same(_saved(tmp_path / "final"), validator.seen[1])  # final = the step-2 weights
    assert not _same(_saved(tmp_path / "final"), validator.seen[3])  # not the last ones, kept apart in last/
    assert _same(_saved(tmp_path / "last"), validator.seen[3])
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["heldout_macro_f1"] for row in logged if "heldout_macro_f1" in row] == [0.1, 0.7, 0.3, 0.2]


def test_untrained_model_is_kept_when_training_only_hurts(tiny_encoder, toy_sets, tmp_path):
    from rerank_rl.rl.paradigms.classifier.supervised import train_supervised

    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, dropout=0.0))
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=4, other_negatives=1), seed=0)
    validator = ScriptedValidator([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    cfg = SupervisedConfig(steps=10, batch_size=2, lr=3e-3, head_lr=3e-3, log_every=5, save_every=0,
                           validate_every=2, patience=2, distill_weight=0.0)
    _, summary = train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path, log=lambda _: None,
                                  validator=validator)
    assert summary["stopped_at"] == 4  # two validations without a new best
    assert summary["heldout"]["chosen_step"] == 0 and _same(_saved(tmp_path / "final"), validator.seen[0])


def test_ppo_reports_heldout_figure_beside_reward_and_keeps_its_best(tiny_encoder, toy_sets, tmp_path):
    from rerank_rl.rewards.classification import f1_micro
    from rerank_rl.rl.paradigms.classifier.ppo import train_ppo

    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, dropout=0.0))
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=3, other_negatives=1), seed=0)
    validator = ScriptedValidator([0.4, 0.3, 0.2, 0.1])  # PPO only hurts: the start model stays
    cfg = PPOConfig(steps=3, batch_size=4, samples_per_example=2, lr=1e-2, head_lr=1e-2, log_every=1, save_every=0,
                    validate_every=1)
    _, summary = train_ppo(model, tokenizer, sampler, cfg, 64, tmp_path, f1_micro, log=lambda _: None,
                           validator=validator)
    history = summary["heldout"]["history"]
    assert [h["step"] for h in history] == [0, 1, 2, 3] and all("reward" in h for h in history[1:])
    assert summary["heldout"]["chosen_step"] == 0 and _same(_saved(tmp_path / "final"), validator.seen[0])
    assert not summary["heldout"]["at_or_above_base"]  # 0.4 < base 0.5, said so


def _decisions(gold, wrong_rows, seed=0):
    """One-hot decisions that match `gold` except on `wrong_rows`, where another label is picked."""
    pred = gold.copy()
    for i in wrong_rows:
        pred[i] = np.roll(gold[i], 1 + seed % (gold.shape[1] - 1))
    return pred


def _gold(n, k, seed):
    rng = np.random.default_rng(seed)
    gold = np.zeros((n, k), dtype=bool)
    gold[np.arange(n), rng.integers(0, k - 1, n)] = True  # the last label is never gold
    return gold


def test_bootstrap_share_of_a_gain_grows_with_the_gain():
    from rerank_rl.rl.paradigms.classifier.evaluate import classification_metrics
    from rerank_rl.rl.paradigms.classifier.validate import _macro_f1, prob_better

    gold = {"a#1": _gold(60, 5, 0), "a#2": _gold(60, 5, 1), "b#1": _gold(60, 4, 2)}
    rng = np.random.default_rng(3)
    noisy = {g: _decisions(m, rng.choice(60, 30, replace=False), seed=i) for i, (g, m) in enumerate(gold.items())}
    for group in gold:  # unresampled, it is scikit-learn's macro-F1, the never-gold label counted as 0
        assert _macro_f1(noisy[group], gold[group], np.arange(60)[None])[0] == pytest.approx(
            classification_metrics(noisy[group], gold[group], list("abcde")[: gold[group].shape[1]])["macro_f1"])
    assert prob_better(noisy, noisy, gold) == 0.0  # a tie is no gain
    assert prob_better(gold, noisy, gold) == 1.0 and prob_better(noisy, gold, gold) == 0.0
    # One text of 180 put right is a real but tiny gain: most resamples show it, far from all; 20 texts: nearly all.
    def fixed(count):
        return {g: m.copy() for g, m in noisy.items()} | {"b#1": np.where(
            (np.arange(60) < count)[:, None] & (noisy["b#1"] != gold["b#1"]).any(1)[:, None], gold["b#1"],
            noisy["b#1"])}
    one = next(c for c in range(1, 60) if (fixed(c)["b#1"] != noisy["b#1"]).any())  # the first wrong text
    small, large = prob_better(fixed(one), noisy, gold), prob_better(fixed(60), noisy, gold)
    assert 0.3 < small < 0.9 and large > 0.97


class DecisionValidator:
    """Scores scripted decisions on fixed gold labels as the real validator does (figure and decisions)."""

    def __init__(self, gold, decisions):
        from rerank_rl.rl.paradigms.classifier.evaluate import classification_metrics

        self.gold, self.decisions, self.base = gold, list(decisions), {"macro_f1": 0.5}
        self.metrics = classification_metrics

    def run(self, model, tokenizer):
        pred = self.decisions.pop(0)
        results = {g: self.metrics(pred[g], self.gold[g], [str(j) for j in range(self.gold[g].shape[1])])
                   for g in self.gold}
        return heldout_figure(results), pred


class Saveable:
    """A model and tokenizer stand-in whose saved folder says which step it was saved at."""

    step = None

    def save_pretrained(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "step.txt").write_text(str(self.step))


@pytest.mark.parametrize("confidence", [0.0, 0.95])
def test_choice_needs_a_gain_beyond_the_noise(tmp_path, confidence):
    gold = {"a#1": _gold(80, 5, 0), "b#1": _gold(80, 4, 1)}
    start = {g: _decisions(m, range(40)) for g, m in gold.items()}
    slightly = {"a#1": _decisions(gold["a#1"], range(1, 40)), "b#1": start["b#1"]}  # one text more right
    clearly = {g: _decisions(m, range(20)) for g, m in gold.items()}  # 40 texts more right
    lines = []
    selection = Selection(DecisionValidator(gold, [start, slightly, slightly, clearly]), tmp_path / "final",
                          every=1, log=lines.append, confidence=confidence)
    model = Saveable()

    def check(step):
        model.step = step
        selection.check(step, model, model)

    check(0)
    check(1)
    # A tiny gain is kept without a confidence and not with one; the clear gain is kept either way.
    assert selection.state["best_step"] == (1 if confidence == 0 else 0)
    # Restored from a checkpoint's state (plain tensors), the choice compares against the same decisions.
    torch.save(selection.state, tmp_path / "state.pt")
    restored = torch.load(tmp_path / "state.pt", weights_only=True)
    selection = Selection(selection.validator, tmp_path / "final", every=1, log=lines.append, state=restored,
                          confidence=confidence)
    check(2)
    assert selection.state["best_step"] == (1 if confidence == 0 else 0)
    check(3)
    assert selection.state["best_step"] == 3 and (tmp_path / "final" / "step.txt").read_text() == "3"
    history = selection.summary()["heldout"]["history"]
    assert "p_better_than_best" not in history[0] and all(0 <= h["p_better_than_start"] <= 1 for h in history[1:])
    assert history[2]["p_better_than_best"] == (0.0 if confidence == 0 else history[2]["p_better_than_start"])
    assert history[1]["p_better_than_start"] < 0.95 < history[3]["p_better_than_start"]
    assert f"beats step 0 in {history[1]['p_better_than_best']:.0%} of resamples" in lines[1]


def test_choice_confidence_must_be_a_share(tmp_path):
    from rerank_rl.rl.config import CONFIG_DIR, load_recipe

    for stage in ("supervised", "ppo"):
        with pytest.raises(UserError, match=f"gliclass_tiny.yaml: {stage}.choice_confidence must be in"):
            load_recipe(CONFIG_DIR / "gliclass_tiny.yaml", [f"{stage}.choice_confidence=1"])


def test_selection_state_survives_a_checkpoint(tmp_path):
    validator = ScriptedValidator([0.3])
    restored = {"best": 0.9, "best_step": 40, "stale": 1, "history": [{"step": 40, "macro_f1": 0.9}]}
    selection = Selection(validator, tmp_path / "final", every=10, patience=2, log=lambda _: None, state=restored)
    selection.check(50, torch.nn.Linear(1, 1), None)
    assert selection.state["best_step"] == 40 and selection.stop()  # a resumed run keeps its earlier best
    assert not (tmp_path / "final").exists()


def test_l2sp_pulls_towards_the_pretrained_weights(tiny_encoder):
    from rerank_rl.rl.paradigms.classifier.supervised import encoder_anchor, l2sp_penalty

    model, _ = build_model(ModelConfig(encoder=tiny_encoder))
    anchor = encoder_anchor(model)
    assert anchor and all(".encoder_model." in f".{name}" for name in anchor)  # the encoder only, not the head
    assert l2sp_penalty(model, anchor).item() == 0.0
    param = next(p for n, p in model.named_parameters() if n in anchor and p.requires_grad)
    with torch.no_grad():
        param.add_(0.5)
    assert l2sp_penalty(model, anchor).item() == pytest.approx(0.25 * param.numel(), rel=1e-4)
    model.zero_grad()
    l2sp_penalty(model, anchor).backward()
    assert torch.allclose(param.grad, torch.full_like(param, 1.0))  # d/dw (w - w0)^2 = 2 * 0.5


def test_label_variants_keep_gold_and_count_distinct_labels(toy_sets):
    from rerank_rl.data_synthesis.label_corpus import DESCRIPTIONS, label_variant

    queries = {"queries": [{"text": "fleas live a year", "label_names": ["how long do fleas live"],
                            "gold_labels": ["how long do fleas live"]},
                           {"text": "paris is the capital", "label_names": ["capital of france"],
                            "gold_labels": ["capital of france"]}]}
    data = DataConfig(max_labels=3, other_negatives=1, label_variants=1.0)
    sampler = LabelSetSampler({**toy_sets, **queries}, data, seed=0)
    for _ in range(100):
        text, labels, gold, _ = sampler.example()
        assert len(gold) == 1 and next(iter(gold)) in labels
        if text == "fleas live a year":  # queries are never rewritten
            assert gold == {"how long do fleas live"}
        elif text == "a wonderful, moving film":  # a sentiment label always is, here (probability 1)
            assert "positive" in next(iter(gold)) or next(iter(gold)) == DESCRIPTIONS["positive"]
    counts = sampler.distinct_labels()
    assert counts["open_vocabulary"] == 0 and counts["with_target"] > 10  # names and their variants
    assert label_variant("card arrival", random.Random(0)) != "card arrival"
    state = sampler.state()
    fresh = LabelSetSampler({**toy_sets, **queries}, data, seed=5)
    fresh.restore(state)
    assert fresh.distinct_labels() == counts and fresh.example() == sampler.example()


def test_holdout_config_errors_name_the_key():
    with pytest.raises(ValueError, match="holdout_sets names 'ag_news:test', which is not in train"):
        DataConfig(holdout_sets=["ag_news:test"]).validate()
    with pytest.raises(ValueError, match="holdout_labels names 'x', which is not in train"):
        DataConfig(holdout_labels={"x": 0.2}).validate()
    with pytest.raises(ValueError, match="holdout_labels.sst2:train must be a share in \\(0, 1\\), got 1.0"):
        DataConfig(train=["sst2:train"], holdout_labels={"sst2:train": 1.0}).validate()
    with pytest.raises(UserError, match="data.holdout_labels.s: the set has 2 labels"):
        split_holdout({"s": [{"text": "x", "label_names": ["a", "b"], "gold_labels": ["a"]}]},
                      DataConfig(train=["s"], holdout_labels={"s": 0.5}), seed=0)


def test_evaluation_reports_macro_f1_over_unseen_labels_apart():
    import numpy as np

    from rerank_rl.rl.paradigms.classifier.evaluate import classification_metrics, unseen_labels

    labels = ["joy", "anger", "guilt"]
    gold = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=bool)
    pred = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=bool)
    unseen = unseen_labels(labels, {"joy", "anger"})
    result = classification_metrics(pred, gold, labels, unseen)
    assert unseen == ["guilt"] and result["macro_f1_unseen"] == pytest.approx(2 / 3)  # guilt: P 1, R 1/2
    assert "macro_f1_unseen" not in classification_metrics(pred, gold, labels, labels)  # all unseen: no subset
