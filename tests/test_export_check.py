"""The export is what serving stacks load: the merged checkpoint in plain transformers and the adapter on its base
through peft give the same scores (and the same completions) as `evaluate` on the tiny model."""

from __future__ import annotations

import json

import pytest

from rerank_rl.rl.export_check import check_export

EXAMPLES = [{"qid": q, "query": f"what is {q}", "doc_ids": [f"{q}d{i}" for i in range(7)],
             "doc_texts": [f"{q} passage {i} about item {i * 3}" for i in range(7)],
             "first_stage_scores": list(range(7, 0, -1)), "labels": [0] * 7} for q in ("alpha", "beta")]


@pytest.fixture(scope="module")
def lora_export(tmp_path_factory, tiny_lm_path):
    """An export as `rerank-rl export` writes it after LoRA RL: model/ merged, adapter/ on its base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("lora-export")
    torch.manual_seed(1)
    # init_lora_weights=False: a random, non-zero update, so the adapter really changes the answers
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm_path),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(out / "adapter")
    model.merge_and_unload().save_pretrained(out / "model")
    AutoTokenizer.from_pretrained(tiny_lm_path).save_pretrained(out / "model")
    bundle = {"paradigm": "groupwise", "variant": "answer_only", "dtype": "float32",
              "inference": {"window": 5, "stride": 3, "repeats": 1, "fusion_weight": None, "max_doc_chars": 60,
                            "seed": 0, "batch_size": 4, "scoring": "expected", "decode_budget": None}}
    (out / "bundle.json").write_text(json.dumps(bundle))
    return out


def test_merged_and_adapter_give_evaluates_scores(lora_export):
    report = check_export(lora_export, EXAMPLES)
    assert report["merged"] == {"scores": 0.0, "same_completions": True}
    assert report["adapter"]["same_completions"] and report["adapter"]["scores"] < 1e-6
    assert report["adapter"]["bundle_scoring"] < 1e-5  # expected scores, read from distributions


def test_the_check_notices_a_missing_adapter_update(lora_export, tiny_lm_path, tmp_path):
    """Serving the base model alone (the adapter forgotten) must fail the check: it answers differently."""
    import shutil

    broken = tmp_path / "export"
    shutil.copytree(lora_export, broken)
    shutil.rmtree(broken / "model")
    shutil.copytree(tiny_lm_path, broken / "model")  # the base where the merged model should be
    report = check_export(broken, EXAMPLES, base_model=str(tiny_lm_path))
    assert not report["adapter"]["same_completions"] and report["adapter"]["bundle_scoring"] > 1e-3
