"""The bi-encoder classifier: text and each label name encoded separately by one sentence encoder, label logit =
scale * cos(text, label) + bias.

Embeddings are computed exactly as sentence-transformers computes them for MiniLM (masked mean pooling over the
last hidden states, then L2 normalisation), so the untrained model IS the base encoder's label-embedding baseline:
training starts at the bar it must clear, and checkpoint choice can always fall back to it. A folder saved here is a
sentence-transformers model as well (`SentenceTransformer(DIR)` loads it), plus `bi_encoder.json` with the scale,
bias and token limit.

Two towers (`text_tower: frozen`): a fixed copy of the base encoder embeds the texts, saved in `text_encoder/`, and
the folder's own encoder embeds the labels (`sentence_transformers(DIR)` gives both).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

CONFIG = "bi_encoder.json"
TEXT_TOWER = "text_encoder"  # subfolder of a two-tower model's fixed text encoder
_MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]


class BiEncoder(torch.nn.Module):
    """One encoder for texts and labels. `encoder_model` is named as in gliclass's model so that the training code
    (L2-SP anchor, learning-rate groups) tells encoder weights from the head (logit scale and bias) the same way."""

    architecture = "bi-encoder"

    def __init__(self, encoder, logit_scale: float, logit_bias: float = 0.0, max_length: int = 256,
                 text_encoder=None):
        super().__init__()
        self.encoder_model = encoder
        # With a text tower, texts are embedded by that fixed copy of the pretrained encoder and only the label
        # tower (encoder_model) trains: the text space stays the base encoder's. It follows train()/eval() like the
        # rest of the model, so in training its dropout noises the texts, as the shared tower's did.
        self.text_encoder = text_encoder.requires_grad_(False) if text_encoder is not None else None
        self.logit_scale = torch.nn.Parameter(torch.tensor(float(logit_scale)))
        self.logit_bias = torch.nn.Parameter(torch.tensor(float(logit_bias)))
        self.max_length = max_length
        # Lent by a caller that scores the same texts again and again (the held-out validator): the locked tower's
        # text vectors outside training, by (text, max_length). None (no caching) otherwise, so that a server
        # does not keep every text it is sent.
        self.text_cache: dict[tuple[str, int], torch.Tensor] | None = None

    @property
    def hidden_size(self) -> int:
        return self.encoder_model.config.hidden_size

    def embed(self, tokenizer, texts: list[str], max_length: int, tower=None) -> torch.Tensor:
        """(N, D) L2-normalised masked-mean embeddings (sentence-transformers' Transformer -> Pooling ->
        Normalize, including its stripping of surrounding whitespace) by `tower` (default: the label tower)."""
        inputs = tokenizer([str(t).strip() for t in texts], padding=True, truncation="longest_first",
                           max_length=max_length, return_tensors="pt").to(self.logit_scale.device)
        hidden = (self.encoder_model if tower is None else tower)(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, p=2, dim=-1)

    def embed_texts(self, tokenizer, texts: list[str], max_length: int) -> torch.Tensor:
        if self.text_encoder is None:
            return self.embed(tokenizer, texts, max_length)
        with torch.no_grad():
            if self.training or self.text_cache is None:  # in training dropout noises the texts: nothing to reuse
                return self.embed(tokenizer, texts, max_length, self.text_encoder)
            missing = list(dict.fromkeys(text for text in texts if (text, max_length) not in self.text_cache))
            if missing:
                vectors = self.embed(tokenizer, missing, max_length, self.text_encoder)
                self.text_cache.update({(text, max_length): vector for text, vector in zip(missing, vectors)})
            return torch.stack([self.text_cache[(text, max_length)] for text in texts])

    def forward(self, tokenizer, texts: list[str], label_lists: list[list[str]], max_length: int):
        """(logits (B, K), mask (B, K), text vectors (B, D), class vectors (B, K, D)); each distinct label string of
        the batch is encoded once."""
        distinct = list(dict.fromkeys(label for labels in label_lists for label in labels))
        text_vectors = self.embed_texts(tokenizer, texts, max_length)
        label_vectors = self.embed(tokenizer, distinct, max_length)
        width = max(len(labels) for labels in label_lists)
        index = {label: i for i, label in enumerate(distinct)}
        slots = torch.zeros(len(texts), width, dtype=torch.long)
        mask = torch.zeros(len(texts), width, dtype=torch.bool)
        for i, labels in enumerate(label_lists):
            slots[i, : len(labels)] = torch.tensor([index[label] for label in labels], dtype=torch.long)
            mask[i, : len(labels)] = True
        classes = label_vectors[slots.to(label_vectors.device)]  # padded slots repeat label 0; mask says so
        cosine = torch.einsum("bd,bkd->bk", text_vectors, classes)
        return self.logit_scale * cosine + self.logit_bias, mask.to(cosine.device), text_vectors, classes

    def save_pretrained(self, folder: str) -> None:
        """The encoder as a sentence-transformers folder, and the head in bi_encoder.json."""
        folder = Path(folder)
        self.encoder_model.save_pretrained(str(folder))
        (folder / "modules.json").write_text(json.dumps(_MODULES, indent=2) + "\n")
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": self.max_length,
                                                                      "do_lower_case": False}) + "\n")
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": self.hidden_size, "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False}) + "\n")
        (folder / "2_Normalize").mkdir(exist_ok=True)
        (folder / CONFIG).write_text(json.dumps({
            "architecture": self.architecture, "logit_scale": self.logit_scale.item(),
            "logit_bias": self.logit_bias.item(), "max_length": self.max_length, "pooling": "mean",
            "normalize": True, "text_encoder": TEXT_TOWER if self.text_encoder is not None else None},
            indent=2) + "\n")
        if self.text_encoder is not None:
            self.text_encoder.save_pretrained(str(folder / TEXT_TOWER))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> BiEncoder:
        head = json.loads((Path(folder) / CONFIG).read_text())
        texts = head.get("text_encoder")
        return cls(AutoModel.from_pretrained(str(folder)), head["logit_scale"], head["logit_bias"],
                   head["max_length"], AutoModel.from_pretrained(str(Path(folder) / texts)) if texts else None)


def build_bi_encoder(path: str, logit_scale: float, max_length: int, text_tower: str = "shared"):
    """(BiEncoder, tokenizer) on the pretrained encoder at `path`: the base encoder itself, untouched. With
    `text_tower="frozen"`, a second copy of it embeds the texts and never trains."""
    encoder = AutoModel.from_pretrained(path)
    texts = copy.deepcopy(encoder) if text_tower == "frozen" else None  # one read from disk, two towers
    return BiEncoder(encoder, logit_scale, 0.0, max_length, texts), AutoTokenizer.from_pretrained(path)


def sentence_transformers(folder: str | Path):
    """(label model, text model) of a saved bi-encoder as sentence-transformers models: the same object for one
    shared encoder; for two towers the text one is the folder's pipeline (tokenizer, pooling, normalisation) with
    the `text_encoder` subfolder's weights."""
    from sentence_transformers import SentenceTransformer

    folder = Path(folder)
    head = json.loads((folder / CONFIG).read_text())
    labels = SentenceTransformer(str(folder), device="cpu")
    if not head.get("text_encoder"):
        return labels, labels
    texts = copy.deepcopy(labels)  # the same tokenizer, pooling and normalisation, read once
    texts[0].model = AutoModel.from_pretrained(str(folder / head["text_encoder"])).eval()
    return labels, texts


def is_bi_encoder_folder(folder: Path) -> bool:
    return (Path(folder) / CONFIG).exists()
