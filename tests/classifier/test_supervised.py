"""Supervised losses and a short training run that must lower the loss."""

import pytest
import torch

from rerank_rl.rl.paradigms.classifier.config import DataConfig, ModelConfig, SupervisedConfig
from rerank_rl.rl.paradigms.classifier.data import LabelSetSampler, open_vocabulary
from rerank_rl.rl.paradigms.classifier.model import build_model, score
from rerank_rl.rl.paradigms.classifier.supervised import prior_loss, supervised_loss, train_supervised


def test_losses_mask_padding_and_focus_on_hard_labels():
    logits = torch.tensor([[4.0, -4.0, 9.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # Padding never counts, whatever its logit.
    assert torch.isclose(supervised_loss(logits, targets, mask),
                         supervised_loss(logits.masked_fill(~mask, 0.0), targets, mask))
    bce = supervised_loss(logits, targets, mask, "bce")
    focal = supervised_loss(logits, targets, mask, "focal", gamma=2.0)
    assert focal < bce  # focal down-weights, never up-weights
    # Focal weight (1 - p_true)^gamma: the confidently right label (p_true ~ 0.98) loses far more weight than an
    # uncertain one (p_true = 0.5), which keeps (1 - 0.5)^2 = 1/4 of its BCE.
    easy = supervised_loss(torch.tensor([[4.0]]), torch.tensor([[1.0]]), torch.tensor([[True]]), "focal")
    hard = supervised_loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.tensor([[True]]), "focal")
    assert torch.isclose(hard, torch.log(torch.tensor(2.0)) * 0.25) and easy < hard / 100
    ce = supervised_loss(torch.tensor([[2.0, 0.0, 50.0]]), torch.tensor([[1.0, 0.0, 0.0]]),
                         torch.tensor([[True, True, False]]), "ce")
    assert torch.isclose(ce, -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0])


def test_balanced_sampling_evens_out_gold_labels():
    names = ["common", "rare"]
    skewed = {"s": [{"text": f"t{i}", "label_names": names, "gold_labels": ["common" if i < 90 else "rare"]}
                    for i in range(100)]}

    def rare_share(balance: bool) -> float:
        sampler = LabelSetSampler(skewed, DataConfig(max_labels=2, other_negatives=0, balance_labels=balance), seed=0)
        golds = [gold for _, _, gold, _ in (sampler.example() for _ in range(2000))]
        return sum(gold == {"rare"} for gold in golds) / len(golds)

    assert rare_share(False) < 0.15  # the file's 10%
    assert 0.45 < rare_share(True) < 0.55  # each label half the time, whatever the file holds


def test_open_vocabulary_keeps_mid_frequency_content_words():
    names = ["wins", "losses"]
    texts = ["the goalkeeper saved it", "a goalkeeper and a referee", "the referee wins", "stadium lights wins",
             "tickets for the stadium", "wins wins"]
    sets = {"s": [{"text": text, "label_names": names, "gold_labels": ["wins"]} for text in texts]}
    # "the", "and", "for" are stop words, "lights" and "tickets" occur once (< min_df), "wins" is a label name.
    assert open_vocabulary(sets, min_df=2, max_df=1.0) == ["goalkeeper", "referee", "stadium"]
    assert open_vocabulary(sets, min_df=2, max_df=0.3) == []  # each is in 2 of 6 texts, over 30%


def test_open_vocabulary_labels_are_offered_without_a_target(toy_sets):
    vocabulary = ["kitchen", "weather", "guitar"]
    data = DataConfig(max_labels=3, other_negatives=1, vocab_labels=2)
    batch = LabelSetSampler(toy_sets, data, seed=0, vocabulary=vocabulary).batch(16)
    for i, labels in enumerate(batch.labels):
        words = [j for j, label in enumerate(labels) if label in vocabulary]
        assert len(words) == 2  # vocab_labels of them in every example
        assert all(not batch.known[i, j] and batch.targets[i, j] == 0 for j in words)
        assert all(batch.known[i, j] for j in range(len(labels)) if j not in words)
        assert batch.targets[i, : len(labels)].sum() == 1  # the gold label is still there, still known
    # With `known` as the BCE mask, an open-vocabulary logit gets no gradient from the supervised loss.
    logits = torch.zeros(batch.targets.shape, requires_grad=True)
    supervised_loss(logits, batch.targets, batch.known).backward()
    assert (logits.grad[~batch.known] == 0).all() and (logits.grad[batch.known] != 0).all()


def test_unlabeled_texts_offer_only_vocabulary_labels(toy_sets):
    from rerank_rl.rl.errors import UserError

    sets = {**toy_sets, "unlabeled": [{"text": "the comet's tail", "label_names": [], "gold_labels": []}]}
    vocabulary = ["kitchen", "weather", "guitar", "planet"]
    data = DataConfig(max_labels=3, other_negatives=1, vocab_labels=1)
    with pytest.raises(UserError, match="'unlabeled' has no labels: unlabeled texts need data.vocab_labels"):
        LabelSetSampler(sets, data, seed=0)
    sampler = LabelSetSampler(sets, data, seed=0, vocabulary=vocabulary)
    drawn = [sampler.example() for _ in range(60)]
    free = [(labels, gold, words) for text, labels, gold, words in drawn if text == "the comet's tail"]
    assert 10 < len(free) < 35  # one set of three, drawn uniformly
    for labels, gold, words in free:
        assert not gold and len(labels) == 3 and set(labels) == words <= set(vocabulary)
    # Labelled sets never borrow labels from the unlabeled one, and still get their own vocabulary label.
    assert all(len(words) == 1 and len(gold) == 1 for _, _, gold, words in drawn if gold)


def test_training_lowers_the_loss(tiny_encoder, toy_sets, tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, dropout=0.0))
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=4, other_negatives=1, shuffle_labels=False), seed=0)
    fixed = sampler.batch(5)

    def loss_now():
        model.eval()
        with torch.no_grad():
            s = score(model, tokenizer, fixed.texts, fixed.labels, 64)
        return supervised_loss(s.logits, fixed.targets, s.mask).item()

    before = loss_now()
    cfg = SupervisedConfig(steps=30, batch_size=8, lr=3e-3, head_lr=3e-3, warmup=0.0, log_every=10, save_every=0)
    model, summary = train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path, log=lambda _: None)
    assert loss_now() < 0.8 * before
    assert (tmp_path / "final" / "model.safetensors").exists() and (tmp_path / "log.jsonl").exists()
    assert summary["steps"] == 30


def test_prior_penalty_removes_label_preference_on_empty_text(tiny_encoder, toy_sets, tmp_path):
    probe = [["sports", "business", "science"], ["negative", "positive", "science"]]

    def trained_prior(weight: float) -> float:
        torch.manual_seed(0)
        model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, dropout=0.0))
        sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=4, other_negatives=1), seed=0)
        cfg = SupervisedConfig(steps=30, batch_size=8, lr=3e-3, head_lr=3e-3, warmup=0.0, log_every=10,
                               save_every=0, distill_weight=0.0, prior_weight=weight)
        model, _ = train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path / str(weight), log=lambda _: None)
        with torch.no_grad():
            return prior_loss(model, tokenizer, probe, 64).item()

    plain, penalised = trained_prior(0.0), trained_prior(5.0)
    assert penalised < 0.2 * plain, (plain, penalised)


def test_resume_continues_from_checkpoint(tiny_encoder, toy_sets, tmp_path):
    cfg = SupervisedConfig(steps=6, batch_size=2, lr=1e-3, head_lr=1e-3, log_every=1, save_every=3)
    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder))
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=3, other_negatives=1), seed=0)
    train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path, log=lambda _: None)
    assert (tmp_path / "checkpoint" / "trainer_state.pt").exists()
    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder))
    _, summary = train_supervised(model, tokenizer, LabelSetSampler(toy_sets, DataConfig(max_labels=3), seed=0),
                                  cfg, 64, tmp_path, resume=True, log=lambda _: None)
    assert summary["resumed_at"] == 3
    steps = [__import__("json").loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 4, 5, 6]  # the resumed run logs steps 4..6 only


def test_distillation_targets_follow_label_similarity():
    from rerank_rl.rl.paradigms.classifier.supervised import SimilarityTeacher, distill_loss

    teacher = SimilarityTeacher("minilm", temperature=0.05)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    log_probs = teacher.log_probs(["the football match ended with a late goal", "my card payment was declined"],
                                  [["football", "cooking", "weather"], ["card payment", "football"]], mask)
    assert log_probs[0].argmax() == 0 and log_probs[1].argmax() == 0 and log_probs[1, 2] == float("-inf")
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2))
    # The loss is zero when the student reproduces the teacher, positive otherwise; padding is ignored.
    matching = log_probs.masked_fill(~mask, 123.0)
    assert distill_loss(matching, log_probs, mask).abs() < 1e-5
    assert distill_loss(torch.zeros(2, 3), log_probs, mask) > 0.1


class ScriptedValidator:
    """Returns the given held-out figures in turn and keeps a copy of the weights it was shown each time."""

    base = {"macro_f1": 0.0}

    def __init__(self, figures):
        self.figures, self.seen = iter(figures), []

    def run(self, model, tokenizer):  # (figure, no per-text decisions: no bootstrap)
        self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"macro_f1": next(self.figures), "sets": {}}, None


@pytest.mark.parametrize("mix_wins", [True, False])
def test_wise_ft_mixes_are_validated_and_kept_when_best(tiny_encoder, toy_sets, tmp_path, mix_wins):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, dropout=0.0))
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=3, other_negatives=1), seed=0)
    cfg = SupervisedConfig(steps=4, batch_size=4, lr=1e-2, head_lr=1e-2, warmup=0.0, log_every=2, save_every=0,
                           distill_weight=0.0, validate_every=2, interpolate=[0.5])
    validator = ScriptedValidator([0.1, 0.2, 0.3, 0.9 if mix_wins else 0.25])  # steps 0, 2, 4, then the mix
    model, summary = train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path, log=lambda _: None,
                                      validator=validator)
    pretrained, _, last, mixed = validator.seen
    moved = [k for k, v in last.items() if v.is_floating_point() and not torch.equal(v, pretrained[k])]
    assert moved  # training changed the weights, so the mix differs from both ends
    for key in moved:
        assert torch.allclose(mixed[key], 0.5 * pretrained[key] + 0.5 * last[key], atol=1e-6)
    assert all(torch.equal(v, last[k]) for k, v in model.state_dict().items())  # the stage returns its last weights
    kept = load_file(str(tmp_path / "final" / "model.safetensors"))
    chosen = mixed if mix_wins else last
    assert all(torch.equal(kept[k], chosen[k]) for k in moved if k in kept)
    held = summary["heldout"]
    assert held["chosen_step"] == 4 and held["chosen_interpolation"] == (0.5 if mix_wins else None)
    assert held["history"][-1] == {"step": 4, "macro_f1": 0.9 if mix_wins else 0.25, "sets": {}, "interpolation": 0.5}


def test_wise_ft_needs_a_validation_and_weights_inside_the_unit_interval():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        SupervisedConfig(interpolate=[1.0]).validate()
    with pytest.raises(ValueError, match="set validate_every > 0"):
        SupervisedConfig(interpolate=[0.5], validate_every=0).validate()
