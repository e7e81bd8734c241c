"""The uni-encoder: input layout identical to gliclass's pipeline, forward shapes and label masks, identity
projector, and the label-set sampler."""

import torch

from rerank_rl.rl.paradigms.classifier.config import DataConfig, ModelConfig
from rerank_rl.rl.paradigms.classifier.data import LabelSetSampler
from rerank_rl.rl.paradigms.classifier.model import build_model, format_input, score


def test_input_layout_matches_gliclass_pipeline(tiny_encoder):
    from gliclass.pipeline import UniEncoderZeroShotClassificationPipeline

    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder))
    pipe = UniEncoderZeroShotClassificationPipeline(model, tokenizer, device="cpu", progress_bar=False)
    assert pipe.prepare_input("some text", ["a", "b c"]) == format_input("some text", ["a", "b c"])


def test_forward_shapes_and_masks(tiny_encoder):
    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder))
    scores = score(model, tokenizer, ["first text", "second, longer text here"],
                   [["x", "y", "z"], ["only one"]], max_length=64, embeddings=True)
    assert scores.logits.shape == (2, 3) and scores.class_embeddings.shape == (2, 3, 32)
    assert scores.text_embeddings.shape == (2, 32)
    assert scores.mask.tolist() == [[True, True, True], [True, False, False]]
    # A label cut off by truncation is masked rather than scored from padding.
    cut = score(model, tokenizer, ["t"], [["alpha", "beta", "gamma delta epsilon"]], max_length=6)
    assert cut.mask.tolist() == [[True, True, False]]


def test_identity_projector_and_logit_scale(tiny_encoder):
    model, _ = build_model(ModelConfig(encoder=tiny_encoder, logit_scale=7.0))
    x = torch.randn(5, 32)
    model.eval()
    assert torch.allclose(model.model.text_projector(x), x, atol=1e-5)
    assert torch.allclose(model.model.classes_projector(x), x, atol=1e-5)
    assert model.model.logit_scale.item() == 7.0
    random_model, _ = build_model(ModelConfig(encoder=tiny_encoder, projector_init="random"))
    assert not torch.allclose(random_model.model.text_projector(x), x, atol=1e-3)


def test_label_sampler_mixes_sets(toy_sets):
    sampler = LabelSetSampler(toy_sets, DataConfig(max_labels=4, other_negatives=1), seed=0)
    for _ in range(20):
        text, labels, gold, open_labels = sampler.example()
        assert gold <= set(labels) and 2 <= len(labels) <= 4 and len(set(labels)) == len(labels)
        own = "sentiment" if gold & {"negative", "positive"} else "topic"
        foreign = set(labels) - set(toy_sets[own][0]["label_names"])
        assert len(foreign) == 1  # exactly `other_negatives` labels from the other set
        assert not open_labels  # no vocabulary given
    batch = sampler.batch(6)
    assert batch.targets.shape[0] == 6 and (batch.targets.sum(1) == 1).all()
    assert batch.known.sum() == sum(len(labels) for labels in batch.labels)  # every real slot, no padding
    state = sampler.state()
    first = sampler.batch(3)
    sampler.restore(state)
    assert sampler.batch(3).labels == first.labels


def test_freeze_bottom_keeps_embeddings_and_low_layers(tiny_encoder):
    from rerank_rl.rl.paradigms.classifier.trainio import freeze_bottom, param_groups

    model, _ = build_model(ModelConfig(encoder=tiny_encoder))
    freeze_bottom(model, layers=1)
    encoder = model.model.encoder_model
    assert not encoder.get_input_embeddings().weight.requires_grad
    assert not any(p.requires_grad for p in encoder.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in encoder.encoder.layer[1].parameters())
    groups = param_groups(model, 1e-5, 1e-3, 0.0)
    assert model.model.logit_scale in groups[1]["params"]
    assert all(p.requires_grad for group in groups for p in group["params"])
