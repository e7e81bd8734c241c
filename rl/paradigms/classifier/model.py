"""The classifier models: the uni-encoder (below) or the bi-encoder (`biencoder.py`, `model.architecture:
bi_encoder`); `build_model`, `load_model` and `score` serve both, so training, validation and export do not care.

The uni-encoder is built from the `gliclass` package's own classes so that an export loads in
`gliclass.ZeroShotClassificationPipeline` unchanged.

One encoder input per text: `[CLS]<<LABEL>>l1<<LABEL>>l2...<<SEP>>text[SEP]` (gliclass's `prompt_first` layout).
Class vectors come from each label's span (or its <<LABEL>> token), the text vector from the first token (or the
<<SEP>> token); both pass through a projector, are L2-normalised, and their dot product times a learned logit scale
is the label's logit. Only padding-invariant choices are offered: gliclass pools text without the attention mask,
so mean or max pooling would make a prediction depend on what else shares its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.models import resolve_model

from .biencoder import BiEncoder, build_bi_encoder, is_bi_encoder_folder
from .config import ModelConfig

LABEL_TOKEN = "<<LABEL>>"
SEP_TOKEN = "<<SEP>>"


def format_input(text: str, labels: list[str]) -> str:
    """The encoder input for one text, exactly as gliclass's uni-encoder pipeline writes it with prompt_first."""
    return "".join(f"{LABEL_TOKEN}{label}" for label in labels) + SEP_TOKEN + text


def _identity_projector(projector: torch.nn.Module) -> None:
    """Make Linear(d->2d) -> GELU -> Linear(2d->d) the identity: W1 = [I; -I], W2 = [I, -I], since
    gelu(x) - gelu(-x) = x. The untrained model then scores labels by the encoder's own cosine similarity."""
    first, second = projector.linear_1, projector.linear_2
    d = second.out_features
    eye = torch.eye(d, dtype=first.weight.dtype)
    with torch.no_grad():
        first.weight.copy_(torch.cat([eye, -eye], dim=0))
        second.weight.copy_(torch.cat([eye, -eye], dim=1))
        first.bias.zero_()
        second.bias.zero_()


def build_model(cfg: ModelConfig, seed: int = 0):
    """(model, tokenizer) on the configured encoder: a bi-encoder, or a fresh GLiClassModel with the label /
    separator tokens added."""
    path = resolve_model(cfg.encoder)
    if cfg.architecture == "bi_encoder":
        return build_bi_encoder(path, cfg.logit_scale, cfg.max_length, cfg.text_tower)
    from gliclass import GLiClassModel, GLiClassModelConfig

    torch.manual_seed(seed)  # the added token embeddings and a random projector depend on it
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_tokens([LABEL_TOKEN, SEP_TOKEN], special_tokens=True)
    # Without an explicit encoder config gliclass sizes its projector for DeBERTa (see DESIGN.md §5).
    encoder_config = AutoConfig.from_pretrained(path)
    width = encoder_config.hidden_size
    config = GLiClassModelConfig(
        encoder_config=encoder_config,
        encoder_model=path,
        architecture_type="uni-encoder",
        problem_type="multi_label_classification",
        prompt_first=True,
        class_token_index=tokenizer.convert_tokens_to_ids(LABEL_TOKEN),
        text_token_index=tokenizer.convert_tokens_to_ids(SEP_TOKEN),
        vocab_size=len(tokenizer),
        hidden_size=2 * width if cfg.projector_init == "identity" else width,
        pooling_strategy="first",
        extract_text_features=cfg.text_vector == "sep",
        class_token_pooling=cfg.class_vector,
        scorer_type="simple",
        normalize_features=True,
        logit_scale_init_value=cfg.logit_scale,
        dropout=cfg.dropout,
        max_labels_alloc="dynamic",
    )
    model = GLiClassModel(config, from_pretrained=True)
    # The encoder was resized for the two new tokens; record it so that from_pretrained builds the right shape
    # directly (resizing again on transformers' meta device fails).
    config.encoder_config.vocab_size = len(tokenizer)
    if cfg.projector_init == "identity":
        _identity_projector(model.model.text_projector)
        _identity_projector(model.model.classes_projector)
    return model, tokenizer


def load_model(path: str | Path):
    """A saved or exported classifier and its tokenizer."""
    from gliclass import GLiClassModel

    path = Path(path)
    if not (path / "config.json").exists():
        raise UserError(f"{path}: not a classifier folder (no config.json)")
    if is_bi_encoder_folder(path):
        return BiEncoder.from_pretrained(path), AutoTokenizer.from_pretrained(str(path))
    model = GLiClassModel.from_pretrained(str(path))
    if model.config.architecture_type != "uni-encoder":
        raise UserError(f"{path}: architecture {model.config.architecture_type!r} is not the uni-encoder")
    return model, AutoTokenizer.from_pretrained(str(path))


@dataclass
class Scores:
    logits: torch.Tensor  # (B, K) one per offered label; padded slots are garbage, see mask
    mask: torch.Tensor  # (B, K) bool, True for a real label
    text_embeddings: torch.Tensor | None = None  # (B, D)
    class_embeddings: torch.Tensor | None = None  # (B, K, D)


def score(model, tokenizer, texts: list[str], label_lists: list[list[str]], max_length: int,
          embeddings: bool = False) -> Scores:
    """Logits of every offered label for each text; label lists may differ in length."""
    if isinstance(model, BiEncoder):
        logits, mask, text_vectors, class_vectors = model(tokenizer, texts, label_lists, max_length)
        return Scores(logits, mask, text_vectors if embeddings else None, class_vectors if embeddings else None)
    inputs = tokenizer([format_input(t, ls) for t, ls in zip(texts, label_lists, strict=True)],
                       truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    inputs = inputs.to(next(model.parameters()).device)
    width = max(len(ls) for ls in label_lists)
    out = model(**inputs, max_num_classes=width, output_text_embeddings=embeddings,
                output_class_embeddings=embeddings, return_dict=True)
    counts = torch.tensor([len(ls) for ls in label_lists], device=out.logits.device)
    mask = torch.arange(width, device=counts.device)[None, :] < counts[:, None]
    # A label cut off by truncation has no <<LABEL>> token; gliclass's class mask reports it missing.
    mask = mask & out.class_mask.bool() if out.class_mask is not None else mask
    return Scores(out.logits, mask, out.text_embeddings, out.class_embeddings)


def encoder_of(model) -> torch.nn.Module:
    """The pretrained transformer inside either architecture."""
    return model.encoder_model if isinstance(model, BiEncoder) else model.model.encoder_model


def logit_scale(model) -> float:
    return (model.logit_scale if isinstance(model, BiEncoder) else model.model.logit_scale).item()


def hidden_size(model) -> int:
    return model.hidden_size if isinstance(model, BiEncoder) else model.config.encoder_config.hidden_size
