"""SFT on the score slots of the groupwise answer (`sft.loss: slots`), the loss that teaches a small model to read.

Plain token SFT on `<answer>{"[1]": 7, "[2]": 0}</answer>` taught SmolLM2-135M nothing about the passages on CPU
budgets (benchmarks/RESULTS.md): teacher forcing shows every slot the gold scores of the slots before it, so the
model learns to count ("one 10 per group, then zeros") instead of reading, and the cross-entropy is mostly paid
for matching the majority score. This loss removes both shortcuts:

- **filler scores**: in the training input every slot's score is a random one, so earlier scores carry nothing;
  each slot is trained on its own gold first digit (10 is trained as 9: one token names the score, and the
  expected-value reading of rl/scoring.py needs no second digit);
- **a ranking term**: a pairwise logistic loss (or, `rank_loss: listwise`, a KL between the softmax of the targets
  and of the predictions) on the slots' expected scores (over the digits 0-9) between passages of one query, across
  all of that query's prompts, so only telling passages apart lowers it;
- the skeleton tokens around the slots keep their cross-entropy, so greedy decoding still writes the format.

One training row is one query: all its groups (prompts) go through the model in one padded pass.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from rerank_rl.rl.paradigms import groupwise
from rerank_rl.rl.scoring import digit_token_ids, left_pad, slot_chunk

IGNORE = -100


def slot_targets(group: dict, max_grade: int) -> list[int]:
    """Gold first digits (0-9) per passage: teacher scores where the pool has them, else grades on 0-10."""
    return [min(9, v) for v in groupwise.answer_scores(group["labels"], max_grade, group.get("teacher_scores"))]


def encode_group(tokenizer, messages: list[dict], targets: Sequence[int], rng: random.Random) -> dict:
    """Token ids of prompt + answer skeleton with random filler scores; labels on the skeleton and on each slot's
    gold first digit; `slots` are the positions whose logits predict a slot's score."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    labels = [IGNORE] * len(ids)
    digits = digit_token_ids(tokenizer)
    slots = []

    def add(tokens: list[int], trained: bool) -> None:
        ids.extend(tokens)
        labels.extend(tokens if trained else [IGNORE] * len(tokens))

    for index, target in enumerate(targets, start=1):
        add(tokenizer(slot_chunk(index), add_special_tokens=False)["input_ids"], trained=True)
        slots.append(len(ids) - 1)
        filler = [digits[int(c)] for c in str(rng.randrange(11))]
        add(filler, trained=False)
        labels[slots[-1] + 1] = digits[target]  # the slot's own score, not the filler shown after it
    add(tokenizer("}</answer>", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id], trained=True)
    return {"input_ids": ids, "labels": labels, "slots": slots, "targets": list(targets)}


def query_rows(config, groups, tokenizer, seed: int) -> list[list[dict]]:
    """One row per source query: the encoded prompts of all its groups."""
    max_grade = max(3, max((max(g["labels"]) for g in groups), default=3))
    by_query: dict[str, list[dict]] = defaultdict(list)
    for g in groups:
        by_query[g.get("source_qid") or g["qid"]].append(g)
    rng = random.Random(seed)
    rows = []
    for members in by_query.values():
        rows.append([encode_group(tokenizer, groupwise.build_messages(g["query"], g["doc_texts"], config.variant,
                                                                      config.data.max_doc_chars),
                                  slot_targets(g, max_grade), rng) for g in members])
    return rows


class SlotCollator:
    """Pads one or more query rows into one batch; slot tensors say where each slot sits and which query it is of.

    Prompts are padded on the left, so every answer ends at the last position: the model then computes logits only
    for the answer tail (`keep_from` on), not for every prompt token. Full-vocabulary logits of the prompts were
    most of the slot loss's memory (a query's 8 prompts x 200 tokens x 49k vocabulary in fp32 is ~300 MB a copy).
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[list[dict]]) -> dict:
        import torch

        prompts = [(q, p) for q, row in enumerate(rows) for p in row]
        ids, mask = left_pad([p["input_ids"] for _, p in prompts], self.pad_id)
        width = len(ids[0])
        pads = [width - len(p["input_ids"]) for _, p in prompts]
        labels = [[IGNORE] * pad + list(p["labels"]) for pad, (_, p) in zip(pads, prompts)]
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        slot_row, slot_pos, slot_query, slot_target = [], [], [], []
        keep_from = width - 1
        for r, (pad, (q, p)) in enumerate(zip(pads, prompts)):
            first_label = next((i for i, t in enumerate(p["labels"]) if t != IGNORE), len(p["labels"]))
            keep_from = min(keep_from, pad + first_label - 1)  # the position that predicts the first label
            for pos, target in zip(p["slots"], p["targets"]):
                slot_row.append(r), slot_pos.append(pad + pos), slot_query.append(q), slot_target.append(target)
        out = {k: torch.tensor(v) for k, v in batch.items()}
        out["position_ids"] = (out["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        out.update(slot_row=torch.tensor(slot_row), slot_pos=torch.tensor(slot_pos),
                   slot_query=torch.tensor(slot_query), slot_target=torch.tensor(slot_target, dtype=torch.float32),
                   keep_from=torch.tensor(max(0, keep_from)))
        return out


def slot_losses(logits, batch: dict, digit_ids: list[int], rank_loss: str = "pairwise",
                temperature: float = 1.0):
    """(token cross-entropy, ranking loss) for a padded batch; `logits` (rows, length - keep_from, vocab) cover the
    positions from `batch["keep_from"]` on."""
    import torch
    import torch.nn.functional as F

    keep_from = int(batch["keep_from"])
    labels = batch["labels"][:, keep_from + 1:]
    token_ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
    slot_logits = logits[batch["slot_row"], batch["slot_pos"] - keep_from][:, digit_ids].float()
    expected = slot_logits.softmax(-1) @ torch.arange(10, dtype=torch.float32, device=slot_logits.device)
    ranking = listwise_loss if rank_loss == "listwise" else pairwise_loss
    return token_ce, ranking(expected, batch["slot_target"], batch["slot_query"], temperature)


def pairwise_loss(expected, target, query, _temperature=None):
    """Logistic loss over the pairs (i, j) of one query where i should score above j."""
    import torch.nn.functional as F

    pairs = (target[:, None] > target[None, :]) & (query[:, None] == query[None, :])
    margin = expected[:, None] - expected[None, :]
    return (F.softplus(-margin) * pairs).sum() / pairs.sum().clamp(min=1)


def listwise_loss(expected, target, query, temperature: float):
    """Mean over queries of KL(softmax(target / T) || softmax(expected / T)) over the query's passages: the whole
    order of the teacher's scores, and how far apart they are, not only which of two is higher (0 when they agree)."""
    import torch
    import torch.nn.functional as F

    losses = []
    for q in query.unique():
        inside = query == q
        if int(inside.sum()) < 2:
            continue
        goal = (target[inside] / temperature).softmax(0)
        losses.append(F.kl_div((expected[inside] / temperature).log_softmax(0), goal, reduction="sum"))
    return torch.stack(losses).mean() if losses else expected.sum() * 0.0


def make_trainer_class():
    """Built lazily: transformers is imported only when a run needs it."""
    from transformers import Trainer

    class SlotTrainer(Trainer):
        rank_weight = 1.0
        rank_loss = "pairwise"
        rank_temperature = 1.0
        digit_ids: list[int] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            slot_keys = ("slot_row", "slot_pos", "slot_query", "slot_target", "labels", "keep_from")
            batch = {k: inputs[k] for k in slot_keys}
            keep = inputs["input_ids"].shape[1] - int(inputs["keep_from"])
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            position_ids=inputs["position_ids"], logits_to_keep=keep)
            token_ce, rank = slot_losses(outputs.logits, batch, self.digit_ids, self.rank_loss, self.rank_temperature)
            loss = token_ce + self.rank_weight * rank
            parts = self.__dict__.setdefault("_parts", {"token_ce": [], "rank_loss": []})
            parts["token_ce"].append(token_ce.item())
            parts["rank_loss"].append(rank.item())
            return (loss, outputs) if return_outputs else loss

        def log(self, logs: dict, *args, **kwargs) -> None:
            parts = self.__dict__.get("_parts")
            if parts and parts["token_ce"] and "loss" in logs:
                for key, values in parts.items():
                    logs[key] = round(sum(values) / len(values), 4)
                    values.clear()
            super().log(logs, *args, **kwargs)

    return SlotTrainer


class _Rows:
    """A map-style dataset over prepared rows (a torch Dataset without importing torch at module load)."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


def build_slot_trainer(config, model, tokenizer, groups, args):
    """A transformers Trainer that runs the slot loss over `groups` (train_groups rows)."""
    from rerank_rl.rl.stages.common import lora_config

    peft_config = lora_config(config.lora)
    if peft_config is not None:
        from peft import get_peft_model
        from transformers import set_seed

        set_seed(config.seed)  # LoRA's A matrices start random: seeded, so one seed gives one run
        model = get_peft_model(model, peft_config)
    trainer_class = make_trainer_class()
    trainer_class.rank_weight = config.sft.rank_weight
    trainer_class.rank_loss, trainer_class.rank_temperature = config.sft.rank_loss, config.sft.rank_temperature
    trainer_class.digit_ids = digit_token_ids(tokenizer)
    rows = query_rows(config, groups, tokenizer, seed=config.seed)
    return trainer_class(model=model, args=args, train_dataset=_Rows(rows),
                         data_collator=SlotCollator(tokenizer.pad_token_id), processing_class=tokenizer)


def check_slot_tokenizer(tokenizer, path: str | Path) -> None:
    """The slot loss reads one digit token per score (rl/scoring.py `digit_token_ids`)."""
    from rerank_rl.rl.errors import UserError

    try:
        digit_token_ids(tokenizer)
    except ValueError:
        raise UserError(f"sft.loss 'slots' needs a tokenizer that writes numbers digit by digit; {path}'s does not: "
                        "use sft.loss: tokens") from None
