"""Vision-language models: loading (processor + image-text-to-text model), page images, and decoding with images.

A model folder whose config has a `vision_config` is a vision-language model (Idefics3/SmolVLM, Qwen2-VL, LLaVA, ...):
`rl.stages.common.load_causal_lm` and `rl.generation.load_hf_generator` hand it here, so the training stages, the
evaluate stage and an export's reload load it without knowing (processors with a video processor, as Qwen2-VL's,
also need torchvision). Its "tokenizer" is then the processor (TRL's trainers
take a processor as `processing_class` and switch to their vision paths).

Messages carry images as content parts, `{"type": "image", "image": <path or PIL image>}`. TRL wants the images in
a dataset column instead and bare `{"type": "image"}` placeholders in the prompt: `split_images` gives both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.generation import HFGenerator, device


def is_vision_language(path: str | Path) -> bool:
    """True when the model at `path` (a local folder, or a hub id in the local HF cache) has a vision tower."""
    config = Path(path) / "config.json"
    if config.exists():
        try:
            return "vision_config" in json.loads(config.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{config}:{err.lineno}: invalid JSON ({err.msg})") from None
    try:
        from transformers import AutoConfig

        return hasattr(AutoConfig.from_pretrained(str(path)), "vision_config")
    except (OSError, ValueError):
        return False  # not loadable here: the causal-LM loader reports it


def load_vision_language(path: str | Path, dtype: str = "float32"):
    """(model, processor) of a vision-language checkpoint; its tokenizer gets a pad token if it lacks one."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path))
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=getattr(torch, dtype))
    return model, processor


def load_page(ref):
    """A page image as an RGB PIL image, from a path or an image; a missing file is a one-line error."""
    from PIL import Image

    if not isinstance(ref, (str, Path)):
        return ref.convert("RGB") if getattr(ref, "mode", "RGB") != "RGB" else ref
    try:
        with Image.open(ref) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"page image {ref} not found") from None
    except OSError as err:
        raise UserError(f"page image {ref}: cannot read it ({err})") from None


def split_images(messages: Sequence[dict]) -> tuple[list[dict], list]:
    """(messages with bare image placeholders and only `type`/`text` keys in every part, the images in order)."""
    images, out = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            if part["type"] == "image":
                images.append(part.get("image"))
                parts.append({"type": "image"})
            else:
                parts.append({"type": "text", "text": part.get("text") or ""})
        out.append({"role": message["role"], "content": parts})
    return out, images


class VisionGenerator(HFGenerator):
    """HFGenerator for a vision-language model: each prompt's images go through the processor beside its text."""

    def __init__(self, model, processor, **options):
        self.processor = processor
        super().__init__(model, processor.tokenizer, **options)  # decoding and padding use the text tokenizer

    def _render(self, conversation) -> str:
        return self.processor.apply_chat_template(split_images(conversation)[0], tokenize=False,
                                                  add_generation_prompt=True)

    def _encode(self, conversations, texts):
        images = [[load_page(ref) for ref in split_images(c)[1]] for c in conversations]
        return self.processor(text=list(texts), images=images if any(images) else None, return_tensors="pt",
                              padding=True, add_special_tokens=False)

    def score_slots(self, conversations, sizes):
        raise UserError("expected-score slot reading is for groupwise text prompts; use scoring: greedy")


def load_vision_generator(model_path: str, batch_size: int = 8, dtype: str = "float32") -> VisionGenerator:
    model, processor = load_vision_language(model_path, dtype)
    return VisionGenerator(model.to(device()), processor, batch_size=batch_size)
