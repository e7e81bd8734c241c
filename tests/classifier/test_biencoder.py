"""The bi-encoder: its untrained scores are the base encoder's label-embedding baseline (sentence-transformers'
masked mean pooling), the InfoNCE loss is multi-label aware, training moves it, and a saved folder reloads (here and
in sentence-transformers) with the same scores."""

import json
import math

import numpy as np
import pytest
import torch

from rerank_rl.rl.paradigms.classifier.biencoder import BiEncoder
from rerank_rl.rl.paradigms.classifier.config import DataConfig, ModelConfig, SupervisedConfig
from rerank_rl.rl.paradigms.classifier.data import LabelSetSampler
from rerank_rl.rl.paradigms.classifier.model import build_model, load_model, score
from rerank_rl.rl.paradigms.classifier.supervised import supervised_loss, train_supervised

TEXTS = ["  the striker scored twice in the final ", "shares fell after the earnings report",
         "word " * 300, "the probe measured the comet's ice"]
LABELS = [["sports", "business", "science"], ["business"], ["a", "b c", "sports"], ["science", "cooking"]]


def _bi(encoder: str, max_length: int = 128) -> tuple[BiEncoder, object]:
    """On the tiny encoder (128 positions) 128 tokens is also sentence-transformers' limit; MiniLM's is 256."""
    model, tokenizer = build_model(ModelConfig(encoder=encoder, architecture="bi_encoder", max_length=max_length,
                                               logit_scale=20.0))
    return model.eval(), tokenizer


def _st_logits(folder: str, texts, label_lists, scale: float = 20.0) -> list[torch.Tensor]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(folder, device="cpu")
    vectors = st.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
    return [scale * st.encode(labels, convert_to_tensor=True, normalize_embeddings=True) @ vectors[i]
            for i, labels in enumerate(label_lists)]


def test_untrained_scores_are_the_sentence_transformers_similarity(tiny_encoder):
    model, tokenizer = _bi(tiny_encoder)
    with torch.no_grad():
        scores = score(model, tokenizer, TEXTS, LABELS, 128, embeddings=True)
    assert scores.mask.tolist() == [[True] * 3, [True, False, False], [True] * 3, [True, True, False]]
    assert scores.text_embeddings.shape == (4, 32) and scores.class_embeddings.shape == (4, 3, 32)
    # Same numbers as sentence-transformers' masked mean pooling + normalisation, padding, truncation (the third
    # text is over 128 tokens) and stripped whitespace included.
    for i, expected in enumerate(_st_logits(tiny_encoder, TEXTS, LABELS)):
        torch.testing.assert_close(scores.logits[i, : len(LABELS[i])], expected, atol=1e-4, rtol=0)
    # A label's score does not depend on what else shares its batch (masked pooling).
    with torch.no_grad():
        alone = score(model, tokenizer, TEXTS[1:2], LABELS[1:2], 128).logits
    torch.testing.assert_close(alone[0, 0], scores.logits[1, 0], atol=1e-5, rtol=0)


def test_infonce_is_multi_label_aware():
    logits = torch.tensor([[2.0, 1.0, 0.0, 9.0], [0.0, 0.0, 3.0, 0.0], [1.0, 1.0, 0.0, 0.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True], [True, True, False, False]])
    loss = supervised_loss(logits, targets, mask, "infonce")
    # Row 0: each gold label against the one negative only (not against the other gold, not the padded 9.0).
    row0 = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.exp(1) / (math.exp(1) + 1))) / 2
    row1 = -math.log(math.exp(3) / (math.exp(3) + 3))
    # Row 2 has no negative: it teaches nothing and is left out of the mean.
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[2] == 0).all() and logits.grad[0, 3] == 0
    assert logits.grad[0, 0] < 0 and logits.grad[0, 2] > 0  # gold up, negative down
    # Raising a gold label's rival gold label leaves its term alone; raising a negative costs.
    more_gold = supervised_loss(logits.detach() + torch.tensor([[0.0, 5.0, 0.0, 0.0]] + [[0.0] * 4] * 2), targets,
                                mask, "infonce")
    assert more_gold < loss


def test_training_moves_the_bi_encoder_and_keeps_the_head_apart(tiny_encoder, toy_sets, tmp_path):
    from rerank_rl.rl.paradigms.classifier.supervised import encoder_anchor
    from rerank_rl.rl.paradigms.classifier.trainio import freeze_bottom, param_groups

    torch.manual_seed(0)
    model, tokenizer = _bi(tiny_encoder)
    anchor = encoder_anchor(model)
    assert anchor and all(name.startswith("encoder_model.") for name in anchor)  # L2-SP covers the encoder only
    groups = param_groups(model, 1e-5, 1e-3, 0.0)
    assert {id(model.logit_scale), id(model.logit_bias)} == {id(p) for p in groups[1]["params"]}
    frozen, _ = _bi(tiny_encoder)
    freeze_bottom(frozen, layers=1)
    assert not any(p.requires_grad for p in frozen.encoder_model.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in frozen.encoder_model.encoder.layer[1].parameters())
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=4, other_negatives=1, shuffle_labels=False), seed=0)
    fixed = sampler.batch(5)

    @torch.no_grad()
    def loss_now():  # on a fixed batch, dropout off
        logits = score(model.eval(), tokenizer, fixed.texts, fixed.labels, 64).logits
        return supervised_loss(logits, fixed.targets, fixed.known, "infonce").item()

    before = loss_now()
    cfg = SupervisedConfig(steps=30, batch_size=8, lr=3e-3, head_lr=3e-3, warmup=0.0, log_every=10, save_every=0,
                           loss="infonce", distill_weight=0.0, l2sp_weight=0.01)
    model, _ = train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path, log=lambda _: None, frozen=0)
    assert loss_now() < 0.8 * before
    reloaded, _ = load_model(tmp_path / "final")
    assert isinstance(reloaded, BiEncoder)
    with torch.no_grad():
        torch.testing.assert_close(score(reloaded.eval(), tokenizer, TEXTS, LABELS, 64).logits,
                                   score(model.eval(), tokenizer, TEXTS, LABELS, 64).logits)


def test_export_reloads_in_sentence_transformers(tiny_encoder, tmp_path):
    from rerank_rl.rl.paradigms.classifier.evaluate import predict_probs
    from rerank_rl.rl.paradigms.classifier.export import export_model, read_bundle, sentence_transformer_scores

    model, tokenizer = _bi(tiny_encoder)
    with torch.no_grad():  # a trained-looking head, so that the export must carry it
        model.logit_scale.fill_(13.0)
        model.logit_bias.fill_(-2.5)
        next(model.encoder_model.parameters()).mul_(1.1)
    folder = export_model(model, tokenizer, tmp_path / "export", max_length=128)
    assert read_bundle(folder)["architecture"] == "bi-encoder"
    labels = ["sports", "business", "science"]
    ours = predict_probs(*load_model(folder), TEXTS, labels, max_length=128)
    np.testing.assert_allclose(sentence_transformer_scores(folder, TEXTS, labels), ours, atol=1e-5)
    head = json.loads((folder / "bi_encoder.json").read_text())
    assert (head["logit_scale"], head["logit_bias"], head["max_length"]) == (13.0, -2.5, 128)


def test_step0_is_the_embedding_baseline_on_real_sets(shared_data):
    """The untrained bi-encoder on the real MiniLM gives the baseline's figures on unseen sets: its step 0 is
    the bar, so checkpoint choice (step 0 included) can never end below it on the held-out labels."""
    from rerank_rl.data_synthesis.classification import read_named, sample
    from rerank_rl.rl.paradigms.classifier.evaluate import embedding_baseline, evaluate_model

    sets = {spec: sample(read_named(spec, shared_data), 60, seed=3)
            for spec in ("ag_news:test", "yin2019_emotion:test")}
    model, tokenizer = _bi("minilm", max_length=256)
    ours = evaluate_model(model, tokenizer, sets, set(), batch_size=16, max_length=256)
    base = embedding_baseline(sets, set(), "minilm")
    for spec in sets:
        assert ours[spec]["macro_f1"] == pytest.approx(base[spec]["macro_f1"], abs=1e-9)
        assert ours[spec]["accuracy"] == pytest.approx(base[spec]["accuracy"], abs=1e-9)

def test_frozen_text_tower_trains_labels_only_and_exports_both(tiny_encoder, toy_sets, tmp_path):
    from rerank_rl.rl.errors import UserError
    from rerank_rl.rl.paradigms.classifier.evaluate import predict_logits
    from rerank_rl.rl.paradigms.classifier.export import export_model, sentence_transformer_logits, verify_export

    torch.manual_seed(0)
    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, architecture="bi_encoder", max_length=128,
                                               logit_scale=20.0, text_tower="frozen"))
    shared, _ = _bi(tiny_encoder)
    with torch.no_grad():  # two copies of one encoder: step 0 is the shared model's (the base encoder's) scores
        torch.testing.assert_close(score(model.eval(), tokenizer, TEXTS, LABELS, 128).logits,
                                   score(shared, tokenizer, TEXTS, LABELS, 128).logits)
    texts_before = {k: v.clone() for k, v in model.text_encoder.state_dict().items()}
    labels_before = {k: v.clone() for k, v in model.encoder_model.state_dict().items()}
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=4, other_negatives=1), seed=0)
    cfg = SupervisedConfig(steps=10, batch_size=8, lr=3e-3, head_lr=3e-3, warmup=0.0, log_every=10, save_every=0,
                           loss="infonce", distill_weight=0.0, l2sp_weight=0.01)
    model, _ = train_supervised(model, tokenizer, sampler, cfg, 64, tmp_path / "run", log=lambda _: None, frozen=0)
    for name, value in model.text_encoder.state_dict().items():
        assert torch.equal(value, texts_before[name]), name
    moved = [name for name, value in model.encoder_model.state_dict().items()
             if value.is_floating_point() and not torch.equal(value, labels_before[name])]
    assert any(".layer.1." in name for name in moved)
    # The export carries both towers: reloaded here and in sentence-transformers, the trained logits come back
    # (logits, not sigmoid scores: at scale 20 every score of the tiny encoder reads 1.0).
    folder = export_model(model, tokenizer, tmp_path / "export", max_length=128)
    reloaded, _ = load_model(folder)
    assert reloaded.text_encoder is not None
    labels = ["sports", "business", "science"]
    ours = predict_logits(model, tokenizer, TEXTS, labels, max_length=128)
    np.testing.assert_allclose(predict_logits(reloaded, tokenizer, TEXTS, labels, max_length=128), ours, atol=1e-4)
    np.testing.assert_allclose(sentence_transformer_logits(folder, TEXTS, labels), ours, atol=1e-4)
    untrained = predict_logits(shared, tokenizer, TEXTS, labels, max_length=128)
    assert np.abs(ours - untrained).max() > 0.1  # training moved the logits: the checks above have teeth
    # An export whose text tower is not the one trained with fails its check, naming the folder.
    from transformers import AutoModel

    AutoModel.from_pretrained(str(folder)).save_pretrained(str(folder / "text_encoder"))  # the label tower instead
    with pytest.raises(UserError, match="export.*scores differ from the trained model's"):
        verify_export(model, tokenizer, folder)


def test_frozen_text_tower_needs_the_bi_encoder():
    with pytest.raises(ValueError, match="text_tower 'frozen' needs architecture 'bi_encoder'"):
        ModelConfig(architecture="uni_encoder", text_tower="frozen").validate()


def test_validator_embeds_a_locked_towers_texts_once(tiny_encoder):
    from rerank_rl.rl.paradigms.classifier.validate import Validator

    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, architecture="bi_encoder", max_length=128,
                                               text_tower="frozen"))
    labels = ["sports", "business", "science"]
    group = [{"text": text, "label_names": labels, "gold_labels": [labels[i % 3]]} for i, text in enumerate(TEXTS)]
    validator = Validator({"toy#1": group}, tiny_encoder, 128, batch_size=2, base={"macro_f1": 0.0})
    model.train()
    first, first_pred = validator.run(model, tokenizer)
    assert model.training and model.text_cache is None  # left as found: nothing cached on the model itself
    assert set(validator.text_cache) == {(text, 128) for text in TEXTS}
    uncached = score(model.eval(), tokenizer, TEXTS, labels, 128).logits
    cached = torch.stack([validator.text_cache[(text, 128)] for text in TEXTS])
    torch.testing.assert_close(cached, model.embed_texts(tokenizer, TEXTS, 128))
    # The second validation reads the vectors from the cache: with the tower's weights spoiled it still agrees
    # with the first, while scoring without the validator sees the change.
    with torch.no_grad():
        for param in model.text_encoder.parameters():
            param.add_(torch.randn_like(param))
    second, second_pred = validator.run(model, tokenizer)
    assert second == first and np.array_equal(second_pred["toy#1"], first_pred["toy#1"])
    assert not torch.allclose(score(model.eval(), tokenizer, TEXTS, labels, 128).logits, uncached)
    # Another model (with another text tower) does not read the first one's vectors: its own are cached.
    other, _ = build_model(ModelConfig(encoder=tiny_encoder, architecture="bi_encoder", max_length=128,
                                       text_tower="frozen"))
    with torch.no_grad():
        for param in other.text_encoder.parameters():
            param.mul_(0.5)
    validator.run(other, tokenizer)
    recached = torch.stack([validator.text_cache[(text, 128)] for text in TEXTS])
    assert not torch.allclose(recached, cached)
    torch.testing.assert_close(recached, other.eval().embed_texts(tokenizer, TEXTS, 128))
