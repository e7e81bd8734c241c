"""`tiny-vlm`: a randomly initialised, SmolVLM-shaped vision-language model built offline, for tests and CPU smoke runs.

No VLM weights can be fetched here, so the multimodal paradigm's whole path (SFT, GRPO with images, evaluation,
export) runs on this: the Idefics3 architecture (SmolVLM's) with a 1-layer vision tower on 64-pixel pages (16 image
tokens each after the pixel shuffle) and a 2-layer Llama, SmolLM2's tokenizer from the cache plus the image tokens the
Idefics3 processor adds, and a ChatML template that renders image content parts. Training can teach it the answer
format at best, nothing about pages. A real VLM (e.g. SmolVLM-256M-Instruct, the same architecture) is another
`model.name`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rerank_rl.rl.models import _exclusive, _is_prepared, _publish, cache_dir, prepare_default_lm

TINY_VLM = "tiny-vlm"
BUILD = 2  # part of the cache folder's name: bump it when the builder changes, so an older build is not reused
IMAGE_SIZE, PATCH_SIZE, SCALE_FACTOR = 64, 8, 2
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2
# A 64-wide hidden state after the final norm has a norm of about 8; with embeddings of the usual std 0.02 no logit
# can rise above ~1.3, so LoRA alone could never make one token likely (the SFT loss stays at ln(vocab)).
EMBEDDING_STD = 0.2

# SmolLM2's ChatML turns; a content list renders its text parts and one <image> per image part (the processor
# expands it into the image's token block).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_vlm(folder: Path) -> Path:
    """Write the tiny model and its processor to `folder` (same seed, same weights)."""
    import torch
    from transformers import (AutoTokenizer, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor)
    from transformers.models.idefics3 import Idefics3ImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(prepare_default_lm())
    tokenizer.add_special_tokens({"additional_special_tokens": ["<global-img>"]})
    # one global image per page, no tiles: the page is resized to IMAGE_SIZE on its longest edge and padded
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": IMAGE_SIZE},
                                       max_image_size={"longest_edge": IMAGE_SIZE})
    processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=IMAGE_TOKENS,
                                  chat_template=CHAT_TEMPLATE)
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    config = Idefics3Config(
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                     "max_position_embeddings": 4096, "tie_word_embeddings": True, **special},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE},
        scale_factor=SCALE_FACTOR, image_token_id=processor.image_token_id, tie_word_embeddings=True, **special)
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config)
    with torch.no_grad():  # the token embeddings (tied to the output layer) at 0.2, not 0.02: see EMBEDDING_STD
        model.get_input_embeddings().weight.normal_(0.0, EMBEDDING_STD)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def prepare_tiny_vlm(force: bool = False) -> Path:
    """The tiny model in the cache (built once, offline; concurrent callers wait on a lock, as for SmolLM2)."""
    out = cache_dir() / "models" / f"{TINY_VLM}-build{BUILD}"
    if _is_prepared(out) and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out.parent / f".{out.name}.lock"):
        if _is_prepared(out) and not force:
            return out
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        try:
            build_tiny_vlm(tmp)
            _publish(tmp, out, force)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
