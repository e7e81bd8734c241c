"""The multimodal listwise (MM-R5) paradigm: prompt/answer round trip, the sliding windows, the ViDoRe reader, the
training rows TRL reads images from, and the recipe end to end on the tiny offline VLM over the real page images
(SFT, GRPO with images, evaluate, export, and a reload that reproduces the run's own metrics)."""

from __future__ import annotations

import json
import re

import pytest
from datasets import Dataset

from clitools import REPO, assert_export_reproduces, run_cli, scattered_lists
from rerank_rl.rl.config import load_recipe
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.paradigms.multimodal import window_starts

MULTIMODAL = get_paradigm("multimodal")
RECIPE = REPO / "configs" / "mm_r5.yaml"


@pytest.fixture(scope="module")
def pages(shared_dataset):
    return shared_dataset("vidore_arxivqa_tiny")


@pytest.fixture(scope="module")
def tiny_vlm_path(default_lm_path):  # noqa: ARG001 (its tokenizer is the tiny model's)
    from rerank_rl.rl.tiny_vlm import prepare_tiny_vlm

    return prepare_tiny_vlm()


@pytest.mark.parametrize("variant", MULTIMODAL.variants)
def test_gold_answer_parses_back_to_ids_by_relevance(variant):
    gold = MULTIMODAL.gold_answer([0, 2, 3, 0, 2], variant)
    assert MULTIMODAL.parse(gold, 5, variant) == [3, 2, 5, 1, 4]  # equal grades keep prompt order
    assert MULTIMODAL.parse(MULTIMODAL.gold_answer([1, 0], variant, teacher_scores=[2.0, 9.0]), 2, variant) == [2, 1]
    if variant == "reasoning":
        assert gold.startswith("<think>Image 3 shows what the question asks.") and "Image 1 does not help" in gold
    # lenient reading: repeats and out-of-range ids dropped, ids left out follow in shown order
    assert MULTIMODAL.parse("<answer>[3, 3, 9, 1]</answer>", 4) == [3, 1, 2, 4]
    assert MULTIMODAL.parse("<answer>[7, 8]</answer>", 4) is None
    assert MULTIMODAL.parse("no answer", 4) is None


def test_prompt_holds_one_image_part_per_page():
    messages = MULTIMODAL.build_messages("what trend?", ["a.png", "b.png", "c.png"], "reasoning")
    parts = messages[1]["content"]
    assert [p["image"] for p in parts if p["type"] == "image"] == ["a.png", "b.png", "c.png"]
    text = "".join(p.get("text", "<img>") for p in parts)
    assert "Question: what trend?" in text and "Image 2: <img>" in text and "[1] to [3]" in text
    assert "<think></think>" in messages[0]["content"][0]["text"]


def _examples(n: int, queries: int = 2) -> list[dict]:
    return scattered_lists(n, queries, lambda quality: f"page-{quality}.png")


def _oracle(calls: list):
    """Answers each prompt with its images ordered by quality, best first."""
    def generate(conversations, max_new_tokens):
        calls.append(len(conversations))
        out = []
        for conv in conversations:
            quality = [int(re.search(r"\d+", p["image"]).group()) for p in conv[1]["content"] if p["type"] == "image"]
            ids = sorted(range(1, len(quality) + 1), key=lambda i: -quality[i - 1])
            out.append(f"<answer>[{', '.join(map(str, ids))}]</answer>")
        return out

    return generate


def test_windows_move_the_best_pages_to_the_top():
    assert window_starts(10, 4, 2) == [6, 4, 2, 0] and window_starts(3, 4, 2) == [0]
    assert window_starts(5, 4, 4) == [1, 0]
    calls: list = []
    stats: dict = {}
    examples = _examples(10)
    run = MULTIMODAL.rank(examples, _oracle(calls), {"variant": "answer_only", "window": 4, "stride": 2,
                                                     "max_doc_chars": 0, "fusion_weight": None}, stats)
    for ex in examples:
        ranked = [d for d, _ in sorted(run[ex["qid"]], key=lambda x: -x[1])]
        quality = {d: int(re.search(r"\d+", t).group()) for d, t in zip(ex["doc_ids"], ex["doc_texts"])}
        assert [quality[d] for d in ranked[:2]] == [9, 8]  # a bottom-up pass of stride 2 carries the top 2 up
    assert calls == [2, 2, 2, 2]  # one window per list per round, both lists in one call
    assert stats.pop("completions_sha1")
    assert stats == {"window": 4, "prompts": 8, "passages": 32, "unparsed": 0, "complete": 8, "kept_order": 0}
    assert "8 multimodal prompts" in MULTIMODAL.describe_answers(stats)


def test_unreadable_answers_keep_first_stage_order_and_are_counted():
    stats: dict = {}
    examples = _examples(6, queries=1)
    run = MULTIMODAL.rank(examples, lambda convs, n: ["garbage"] * len(convs),
                          {"variant": "reasoning", "window": 4, "stride": 2, "max_doc_chars": 0}, stats)
    assert [d for d, _ in sorted(run["q0"], key=lambda x: -x[1])] == examples[0]["doc_ids"]
    assert stats["unparsed"] == stats["prompts"] == 2
    with pytest.raises(UserError, match="no scores to fuse"):
        MULTIMODAL.rank(examples, None, {"variant": "answer_only", "window": 4, "stride": 2, "fusion_weight": 0.5})


def test_vidore_reader_and_training_rows_carry_the_page_images(pages):
    from rerank_rl.data_synthesis.vidore import read_vidore

    examples = read_vidore(pages, seed=1)
    assert [ex["qid"] for ex in examples] == ["q_0", "q_1"]
    for ex in examples:
        assert len(ex["doc_ids"]) == 10 and sum(ex["labels"]) == 1 and all(t.endswith(".png") for t in ex["doc_texts"])
    gold = {ex["qid"]: ex["doc_ids"][ex["labels"].index(1)] for ex in examples}
    assert gold == {"q_0": "0", "q_1": "1"}  # relevant_docs: q_0 -> page 0, q_1 -> page 1
    assert read_vidore(pages, seed=1) == examples and read_vidore(pages, seed=2) != examples  # seeded shuffle
    with pytest.raises(UserError, match="not a ViDoRe export"):
        read_vidore(pages / "images")

    config = load_recipe(RECIPE)
    groups = Dataset.from_list([{**ex, "doc_ids": ex["doc_ids"][:3], "doc_texts": ex["doc_texts"][:3],
                                 "labels": ex["labels"][:3], "first_stage_scores": ex["first_stage_scores"][:3]}
                                for ex in examples])
    for rows in (MULTIMODAL.rl_rows(groups, config), MULTIMODAL.sft_rows(groups, config)):
        row = rows[0]
        placeholders = [p for m in row["prompt"] for p in m["content"] if p["type"] == "image"]
        assert len(placeholders) == len(row["images"]) == 3  # TRL fills placeholders from the images column
        assert all("image" not in p for p in placeholders) and row["images"][0].size[0] > 1000  # decoded pages
    assert set(MULTIMODAL.rl_rows(groups, config).column_names) >= {"prompt", "images", "labels", "doc_ids", "qid"}
    broken = groups.map(lambda g: {"doc_texts": [t + ".missing" for t in g["doc_texts"]]})
    with pytest.raises(UserError, match=r"page image .*\.missing not found"):
        MULTIMODAL.rl_rows(broken, config)


def test_the_generator_shows_the_model_each_prompts_own_pages(pages, tiny_vlm_path):
    """Same text, other pages: the tiny VLM's answer distribution must change (the images reach the model), and
    batching must not (each prompt gets its own images, left-padded)."""
    from rerank_rl.rl.generation import load_hf_generator
    from rerank_rl.rl.vlm import VisionGenerator

    generator = load_hf_generator(str(tiny_vlm_path), batch_size=3)
    assert isinstance(generator, VisionGenerator)
    images = sorted(str(p) for p in (pages / "images").glob("*.png"))
    prompts = [MULTIMODAL.build_messages(query, pictures) for query, pictures in
               (("which page?", images[:2]), ("which page?", images[2:4]), ("which page, more words?", images[4:7]))]
    batched = generator.generate_with_logprobs(prompts, 3)
    alone = [generator.generate_with_logprobs([p], 3)[0] for p in prompts]
    assert batched[0][1][0][1] != batched[1][1][0][1]
    for (text, tokens), (text1, tokens1) in zip(batched, alone):
        assert text == text1 and [t for t, _ in tokens] == [t for t, _ in tokens1]
        assert max(abs(a - b) for (_, a), (_, b) in zip(tokens, tokens1)) < 1e-3
    with pytest.raises(UserError, match="page image /nowhere.png not found"):
        generator([MULTIMODAL.build_messages("q", ["/nowhere.png", images[0]])], 2)


def test_recipe_checks_rewards_sources_and_model(tmp_path):
    config = load_recipe(RECIPE)
    assert config.paradigm == "multimodal" and config.model.name == "tiny-vlm"
    with pytest.raises(UserError, match="'grouprank_answer_only' reads 'scores' answers, but the multimodal"):
        load_recipe(RECIPE, ["rl.rewards={grouprank_answer_only: 1.0}"])
    with pytest.raises(UserError, match="'mm_r5' requires <think> and <answer> tags"):
        load_recipe(RECIPE, ["rl.rewards={mm_r5: 1.0}"])
    assert load_recipe(RECIPE, ["variant=reasoning", "rl.rewards={mm_r5: 1.0}"]).variant == "reasoning"
    with pytest.raises(UserError, match="ranks page images, and format 'builtin' gives text passages"):
        load_recipe(RECIPE, ["data.eval={format: builtin}"])
    with pytest.raises(UserError, match="stride must be between 1 and window"):
        load_recipe(RECIPE, ["evaluate.stride=9"])
    with pytest.raises(UserError, match="trains on gold orders of page images"):
        load_recipe(RECIPE, ["sft.loss=slots"])
    text_model = tmp_path / "text-lm"
    text_model.mkdir()
    (text_model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UserError, match="is not a vision-language model"):
        load_recipe(RECIPE, [f"model.name={text_model}"])


def test_mm_r5_recipe_end_to_end(tmp_path, pages, tiny_vlm_path):  # noqa: ARG001 (pages: skip without the data)
    from test_pipeline import LENGTH_REWARD

    # The untrained model earns mm_r5 0 everywhere (no group would teach anything); a small length reward beside it
    # gives GRPO advantages, so its steps really update the weights through the image prompts.
    (tmp_path / "length.py").write_text(LENGTH_REWARD)
    run_dir = tmp_path / "run"
    result = run_cli("train", str(RECIPE), "--output-dir", str(run_dir), "--set", f"model.name={tiny_vlm_path}",
                     "ray.enabled=false", "sft.max_steps=2", "sft.save_steps=1", "rl.max_steps=2", "rl.save_steps=1",
                     f"rl.rewards={{mm_r5_answer_only: 1.0, '{tmp_path}/length.py:by_length': 0.1}}",
                     "evaluate.window=4", "evaluate.stride=2", "evaluate.before_training=false", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert list(state["done"]) == ["data", "sft", "rl", "eval_after", "export"]
    after = json.loads((run_dir / "metrics/after.json").read_text())
    assert after["paradigm"] == "multimodal" and after["reranked"]["queries"] == 2
    assert after["answers"]["prompts"] == 2 * len(window_starts(10, 4, 2)) and not after["fusion"]
    bundle = json.loads((run_dir / "export/bundle.json").read_text())
    assert bundle["paradigm"] == "multimodal" and bundle["answer_format"] == "permutation"
    assert bundle["inference"]["window"] == 4 and bundle["inference"]["stride"] == 2
    assert (run_dir / "export/model/processor_config.json").exists()  # the processor travels with the weights
    from safetensors.torch import load_file

    adapter = load_file(str(run_dir / "export/adapter/adapter_model.safetensors"))
    assert adapter and not [n for n in adapter if "vision" in n]  # LoRA on the language model: vision tower frozen
    assert any(w.abs().max() > 0 for n, w in adapter.items() if "lora_B" in n)  # GRPO moved it (B starts at 0)
    assert "multimodal prompts" in (run_dir / "report.md").read_text()
    assert_export_reproduces(run_dir, "multimodal", tmp_path)
    refused = run_cli("serve", str(run_dir / "export"), "--port", "0")  # documents would be paths on the server
    assert refused.returncode == 2 and "serving a multimodal export is not supported" in refused.stderr
