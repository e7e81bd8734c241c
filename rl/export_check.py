"""Is an export what a serving stack would load? The merged checkpoint in plain transformers, and the LoRA adapter
on its base model through peft, must give the same scores as `evaluate` (the bundle's Reranker).

Plain transformers here means the folder's own tokenizer and chat template, greedy `generate` one prompt at a time,
and the bundle's parser on the text: what vLLM or any OpenAI-compatible server does with the merged model. The
completions must match token for token, not only the scores (a model that answers nothing parseable would
otherwise pass by scoring 0 everywhere).
"""

from __future__ import annotations

import json
from pathlib import Path

from rerank_rl.rl.errors import UserError


def plain_generator(model, tokenizer):
    """`generate(conversations, max_new_tokens)` with nothing but transformers: no batching, no padding."""
    import torch

    def generate(conversations, max_new_tokens: int) -> list[str]:
        texts = []
        for conversation in conversations:
            enc = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            texts.append(tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
        return texts

    return generate


def _recording(generate):
    """Wrap a generator so that its completions can be compared afterwards."""
    def wrapper(conversations, max_new_tokens):
        out = generate(conversations, max_new_tokens)
        wrapper.completions.extend(out)
        return out

    wrapper.completions = []
    if hasattr(generate, "score_slots"):
        wrapper.score_slots = generate.score_slots
    return wrapper


def _gap(a: dict, b: dict) -> float:
    """Largest score difference between two runs over the same documents."""
    return max(abs(x - dict(b[qid])[doc]) for qid, hits in a.items() for doc, x in hits)


def check_export(export_dir: str | Path, examples: list[dict], base_model: str | None = None) -> dict:
    """{"merged": ..., "adapter": ...} with, for each loading path, the largest score difference from `evaluate`
    under greedy decoding ("scores"), whether every completion matched ("same_completions"), and for the
    adapter under the bundle's own scoring too ("bundle_scoring")."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.rl.generation import HFGenerator
    from rerank_rl.rl.serving import load_reranker, rank_with

    export_dir = Path(export_dir)
    reranker = load_reranker(export_dir, batch_size=1)  # one prompt per pass: no padding on either side
    variant, dtype = reranker.bundle["variant"], getattr(torch, reranker.bundle.get("dtype", "float32"))
    greedy = {**reranker.settings, "fusion_weight": None, "scoring": "greedy"}
    reference = _recording(reranker.generate)
    expected = rank_with(reranker.paradigm, reference, examples, variant, greedy)

    def compare(model, tokenizer) -> dict:
        generate = _recording(plain_generator(model, tokenizer))
        got = rank_with(reranker.paradigm, generate, examples, variant, greedy)
        return {"scores": _gap(expected, got), "same_completions": generate.completions == reference.completions}

    tokenizer = AutoTokenizer.from_pretrained(export_dir / "model")
    report = {"merged": compare(AutoModelForCausalLM.from_pretrained(export_dir / "model", dtype=dtype), tokenizer)}
    adapter = export_dir / "adapter"
    if adapter.exists():
        from peft import PeftModel

        base = base_model or json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
        if not Path(base).exists():
            raise UserError(f"{adapter}: its base model {base} is gone (the run's sft/merged); pass base_model")
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype), adapter).eval()
        report["adapter"] = compare(model, tokenizer)
        own = {**reranker.settings, "fusion_weight": None}
        report["adapter"]["bundle_scoring"] = _gap(
            rank_with(reranker.paradigm, reranker.generate, examples, variant, own),
            rank_with(reranker.paradigm, HFGenerator(model, tokenizer, batch_size=1, progress=False), examples,
                      variant, own))
    return report
