"""The slot loss (rl/stages/slot_sft.py): what the model is shown, what it is trained on, and the ranking term."""

from __future__ import annotations

import random

import pytest

from rerank_rl.data_synthesis.groups import sample_groups
from rerank_rl.rl.paradigms import groupwise
from rerank_rl.rl.stages.slot_sft import IGNORE, SlotCollator, encode_group, slot_losses, slot_targets

pytestmark = pytest.mark.slow  # needs the default model's tokenizer


@pytest.fixture(scope="module")
def tokenizer(default_lm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_lm_path)


def test_slot_targets_use_teacher_scores_and_cap_ten_at_nine():
    assert slot_targets({"labels": [0, 1, 2, 3]}, max_grade=3) == [0, 3, 7, 9]
    assert slot_targets({"labels": [0, 0, 0], "teacher_scores": [0.4, 5.6, 11.0]}, max_grade=3) == [0, 6, 9]


def test_encoded_group_trains_gold_digits_and_shows_fillers(tokenizer):
    messages = groupwise.build_messages("q?", ["a", "b", "c"])
    row = encode_group(tokenizer, messages, [9, 0, 3], random.Random(0))
    ids, labels, slots = row["input_ids"], row["labels"], row["slots"]
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    assert len(ids) == len(labels) and len(slots) == 3
    # the label after each slot is its gold first digit; the input there is a filler (not necessarily the gold)
    assert [labels[s + 1] for s in slots] == [digits[9], digits[0], digits[3]]
    assert all(ids[s + 1] in digits for s in slots)
    # the skeleton is what the scorer feeds, so the slot positions are the ones rl/scoring.py reads
    text = tokenizer.decode(ids[slots[0] - 8:slots[0] + 1])
    assert text.endswith('<answer>{"[1]": ')
    # prompt tokens carry no loss; the closing tag does
    assert labels[0] == IGNORE and labels[-1] == tokenizer.eos_token_id
    # the fillers are random (earlier slots tell later ones nothing), the labels are not
    others = [encode_group(tokenizer, messages, [9, 0, 3], random.Random(seed)) for seed in range(1, 6)]
    assert all(o["labels"] == labels for o in others)
    assert len({tuple(o["input_ids"][s + 1] for s in slots) for o in others}) > 1


def test_ranking_term_prefers_the_right_order():
    import torch

    digit_ids = list(range(10))
    rows = [[{"input_ids": [0, 1, 2], "labels": [IGNORE, 1, 2], "slots": [0, 1], "targets": [9, 0]}],
            [{"input_ids": [0, 1], "labels": [IGNORE, 1], "slots": [0], "targets": [5]}]]
    batch = SlotCollator(pad_id=0)(rows)
    assert batch["slot_query"].tolist() == [0, 0, 1]

    def logits_for(high_first: bool):
        logits = torch.zeros(2, 3, 10)
        logits[0, 0, 9 if high_first else 0] = 8.0
        logits[0, 1, 0 if high_first else 9] = 8.0
        return logits

    _, right = slot_losses(logits_for(True), batch, digit_ids)
    _, wrong = slot_losses(logits_for(False), batch, digit_ids)
    assert right.item() < 0.01 < 5.0 < wrong.item()  # pairs only within a query: query 1's single slot adds none


def test_one_passage_groups_of_a_query_mix_grades():
    pool = {"qid": "q", "query": "x", "doc_ids": [f"d{i}" for i in range(10)], "doc_texts": ["t"] * 10,
            "first_stage_scores": [0.0] * 10, "labels": [3] + [0] * 9}
    groups = sample_groups([pool], [1], groups_per_query=5, seed=0, mixed_fraction=1.0)
    members = [g["doc_ids"][0] for g in groups]
    assert len(set(members)) == 5 and members[0] == "d0"  # the best passage first, then distinct others


def test_one_passage_groups_hold_every_grade_of_the_pool_for_every_seed():
    """Stratified draws: 4 prompts of a pool graded 3/2/1/0 hold one passage of each grade (the adjacent-grade
    pairs the ranking term learns from), where uniform draws would miss one in most seeds; a fifth prompt starts
    the next round; more prompts than passages repeat passages rather than fail."""
    labels = [0, 0, 2, 0, 1, 0, 3, 0, 2, 1]
    pool = {"qid": "q", "query": "x", "doc_ids": [f"d{i}" for i in range(10)], "doc_texts": ["t"] * 10,
            "first_stage_scores": [0.0] * 10, "labels": labels}
    for seed in range(20):
        groups = sample_groups([pool], [1], groups_per_query=12, seed=seed, mixed_fraction=1.0)
        grades = [g["labels"][0] for g in groups]
        assert grades[:4] == [3, 2, 1, 0] and grades[4:7] == [2, 1, 0]
        assert len({g["doc_ids"][0] for g in groups[:10]}) == 10
    firsts = {sample_groups([pool], [1], 4, seed=s, mixed_fraction=0.0)[0]["labels"][0] for s in range(20)}
    assert len(firsts) > 1  # mixed_fraction 0: uniform draws, not stratified


def test_tail_logits_of_a_left_padded_batch_equal_each_prompt_alone(tokenizer, tiny_lm_path):
    """The trainer computes logits only for the answer tail of a left-padded batch: the losses must equal the ones
    of each prompt run alone, unpadded, with full logits."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path).eval()
    digit_ids = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    rng = random.Random(0)
    row = [encode_group(tokenizer, groupwise.build_messages("a short query", ["x " * n]), [t], rng)
           for n, t in ((3, 9), (40, 2), (12, 5))]  # unequal lengths, so two of three are padded
    batch = SlotCollator(tokenizer.pad_token_id)([row])
    keep = batch["input_ids"].shape[1] - int(batch["keep_from"])
    assert keep < batch["input_ids"].shape[1] - 20  # the prompts' logits are not computed
    with torch.no_grad():
        tail = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     position_ids=batch["position_ids"], logits_to_keep=keep).logits
        token_ce, rank = slot_losses(tail, batch, digit_ids)
        alone = [model(input_ids=torch.tensor([p["input_ids"]])).logits[0] for p in row]
    # reference: every prompt unpadded, full logits
    ce_sum = ce_count = 0
    expected = []
    for p, logits in zip(row, alone):
        labels = torch.tensor(p["labels"][1:])
        ce_sum += torch.nn.functional.cross_entropy(logits[:-1], labels, ignore_index=IGNORE, reduction="sum")
        ce_count += int((labels != IGNORE).sum())
        expected.append(logits[p["slots"][0], digit_ids].softmax(-1) @ torch.arange(10.0))
    assert token_ce.item() == pytest.approx((ce_sum / ce_count).item(), abs=1e-4)
    e = torch.stack(expected)  # targets 9 > 5 > 2: pairs (0,1), (0,2), (2,1)
    ref_rank = torch.nn.functional.softplus(-torch.stack([e[0] - e[1], e[0] - e[2], e[2] - e[1]])).mean()
    assert rank.item() == pytest.approx(ref_rank.item(), abs=1e-4)


def test_listwise_term_follows_the_teachers_scores_per_query():
    import torch

    from rerank_rl.rl.stages.slot_sft import listwise_loss

    target = torch.tensor([9.0, 3.0, 0.0, 5.0])
    query = torch.tensor([0, 0, 0, 1])  # query 1 has one passage: no list, no loss
    assert listwise_loss(target.clone(), target, query, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    shifted = listwise_loss(target + 2.0, target, query, 1.0)  # a constant shift keeps the distribution
    assert shifted.item() == pytest.approx(0.0, abs=1e-6)
    expected = torch.tensor([3.0, 3.0, 3.0, 0.0], requires_grad=True)
    loss = listwise_loss(expected, target, query, 1.0)
    loss.backward()
    # the gradient raises the teacher's best passage, lowers its worst, and leaves the lone passage alone
    assert loss.item() > 0.5 and expected.grad[0] < 0 < expected.grad[2] and expected.grad[3] == 0
    # a higher temperature flattens both distributions: the same disagreement costs less
    assert listwise_loss(expected.detach(), target, query, 4.0).item() < loss.item()
    assert listwise_loss(torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([0]), 1.0).item() == 0.0


def test_the_recipes_rank_loss_reaches_the_trainer(tokenizer, tiny_lm_path, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, TrainingArguments

    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.stages.slot_sft import build_slot_trainer

    groups = [{"qid": "q", "query": "a short query", "doc_texts": [text], "labels": [label]}
              for text, label in (("x x x", 3), ("y " * 30, 0), ("z z", 1))]
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    losses = {}
    for kind in ("pairwise", "listwise"):
        config = load_recipe(CONFIG_DIR / "grouprank_tiny.yaml", ["sft.loss=slots", f"sft.rank_loss={kind}",
                                                                  "sft.rank_weight=2.0", "lora.enabled=false"])
        model = AutoModelForCausalLM.from_pretrained(tiny_lm_path).eval()
        trainer = build_slot_trainer(config, model, tokenizer, groups, args)
        batch = trainer.data_collator([trainer.train_dataset[0]])
        with torch.no_grad():
            losses[kind] = trainer.compute_loss(model, batch).item()
            keep = batch["input_ids"].shape[1] - int(batch["keep_from"])
            tail = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         position_ids=batch["position_ids"], logits_to_keep=keep).logits
            token_ce, rank = slot_losses(tail, batch, trainer.digit_ids, kind, config.sft.rank_temperature)
        assert losses[kind] == pytest.approx(token_ce.item() + 2.0 * rank.item(), abs=1e-5)
    assert losses["pairwise"] != pytest.approx(losses["listwise"], abs=1e-4)


def test_frozen_layers_stay_at_their_pretrained_weights_and_the_rest_trains(tmp_path, tiny_lm_path, monkeypatch):
    """sft.frozen_layers through the SFT stage: the embeddings (tied to the output head) and the lowest layers are
    bit-identical after training, the layers above moved."""
    from safetensors.torch import load_file

    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.stages.prepare import prepare_data
    from rerank_rl.rl.stages.sft import run_sft

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    config = load_recipe(CONFIG_DIR / "grouprank_tiny.yaml",
                         ["ray.enabled=false", "lora.enabled=false", "sft.loss=slots", "sft.frozen_layers=1",
                          "sft.max_steps=2", "sft.learning_rate=1e-3", "sft.save_steps=10", "evaluate.probe_every=0"])
    prepare_data(config, tmp_path)
    merged = run_sft(config, tmp_path, str(tiny_lm_path))
    base, after = load_file(str(tiny_lm_path / "model.safetensors")), load_file(str(merged / "model.safetensors"))
    moved = {name: (after[name] - base[name]).abs().max().item() for name in base}
    frozen = [n for n in moved if n.startswith(("model.embed_tokens.", "model.layers.0."))]
    trained = [n for n in moved if n.startswith("model.layers.1.") and n.endswith("proj.weight")]
    assert frozen and trained
    assert all(moved[n] == 0.0 for n in frozen), {n: moved[n] for n in frozen if moved[n]}
    assert all(moved[n] > 0.0 for n in trained), {n: moved[n] for n in trained if not moved[n]}


def test_frozen_layers_are_checked_against_lora_and_the_model_depth(tiny_lm_path):
    from transformers import AutoModelForCausalLM

    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.errors import UserError
    from rerank_rl.rl.stages.common import freeze_lower_layers

    with pytest.raises(Exception, match="frozen_layers applies to full fine-tuning"):
        load_recipe(CONFIG_DIR / "grouprank_tiny.yaml", ["lora.enabled=true", "sft.frozen_layers=1"])
    with pytest.raises(UserError, match="has 2 layers"):
        freeze_lower_layers(AutoModelForCausalLM.from_pretrained(tiny_lm_path), 2)
