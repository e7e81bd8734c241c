"""Can a short CPU fine-tune teach a model TREC DL relevance at all? A learning curve before a recipe's budget.

The model reads one query and one passage in a short prompt and answers yes or no; its score is the log-odds
log P(yes) - log P(no) at the answer position (the monoT5 / RankLLaMA reading). Training is listwise distillation:
for each query, a few passages (the teacher's top two and random others of its pool) and the KL between the softmax
of the teacher's 0-10 scores and of the model's scores. Every `--eval-every` steps it reranks the first
`--queries` DL19 queries' BM25 top `--depth` and prints nDCG@10 beside BM25's on the same lists.

    python benchmarks/probe_learning_curve.py --pools runs/synthesis-dl-teacher/pools [--lora 0] [--lr 2e-5]
        [--freeze 0] [--steps 300] [--queries 20] [--depth 30] [--threads 2]

`--pools` is the synthesis stage's output (`rerank-rl synthesize configs/synthesis_dl_teacher.yaml`); at most 200
SciFact pools are used, as in the DL recipes. Full fine-tuning by default (`--lora R` for LoRA of rank R;
`--freeze N` keeps the embeddings and the lowest N layers fixed, as `sft.frozen_layers` does in a recipe).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trec_dl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", required=True)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--lora", type=int, default=0, help="LoRA rank on every linear layer (0: full fine-tuning)")
    ap.add_argument("--freeze", type=int, default=0, help="lowest transformer layers kept fixed (full FT only)")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--queries-per-step", type=int, default=2)
    ap.add_argument("--passages", type=int, default=8, help="passages per query and step")
    ap.add_argument("--max-chars", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--depth", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import numpy as np
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.data_synthesis.readers import read_qrels, read_rank_llm
    from rerank_rl.rewards.metrics import evaluate_run, rank_from_scores
    from rerank_rl.rl.models import resolve_model
    from rerank_rl.rl.stages.common import freeze_lower_layers

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    path = resolve_model(a.model)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if a.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=a.lora, lora_alpha=2 * a.lora, target_modules="all-linear"))
    else:
        freeze_lower_layers(model, a.freeze)
    yes = [tokenizer.encode(w)[-1] for w in ("yes", " yes")]
    no = [tokenizer.encode(w)[-1] for w in ("no", " no")]

    def scores(query: str, passages: list[str]):
        texts = [tokenizer.apply_chat_template(
            [{"role": "user", "content": f"Query: {query}\nPassage: {p[:a.max_chars]}\nDoes the passage answer "
                                         "the query? Answer yes or no."}], tokenize=False, add_generation_prompt=True)
                 for p in passages]
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(**batch, logits_to_keep=1).logits[:, -1].float()
        return torch.logsumexp(logits[:, yes], 1) - torch.logsumexp(logits[:, no], 1)

    pools, scifact = [], 0
    for row in load_from_disk(a.pools):
        scifact += "scifact" in row["source"]
        if "scifact" not in row["source"] or scifact <= 200:
            pools.append((row["query"], row["doc_texts"], np.asarray(row["teacher_scores"], dtype=np.float32)))
    qrels = read_qrels(DATA / "qrels" / "qrels.dl19-passage.txt")
    lists = [e for e in read_rank_llm(DATA / "BM25" / "retrieve_results_dl19.json", qrels, a.depth)
             if e["qid"] in qrels][:a.queries]
    judged = {e["qid"]: qrels[e["qid"]] for e in lists}

    def ndcg() -> tuple[float, float]:
        model.eval()
        reranked, first = {}, {}
        with torch.no_grad():
            for e in lists:
                s = torch.cat([scores(e["query"], e["doc_texts"][i:i + 16]) for i in range(0, a.depth, 16)])
                reranked[e["qid"]] = rank_from_scores(dict(zip(e["doc_ids"], s.tolist())))
                first[e["qid"]] = e["doc_ids"]
        model.train()
        return evaluate_run(reranked, judged, ["ndcg@10"])["ndcg@10"], evaluate_run(first, judged, ["ndcg@10"])["ndcg@10"]

    print(f"{len(pools)} training pools; DL19: {len(lists)} queries x BM25 top {a.depth}", flush=True)
    started = time.time()
    untrained, bm25 = ndcg()
    print(f"step 0: nDCG@10 {untrained:.4f} (BM25 {bm25:.4f}) [{time.time() - started:.0f} s an evaluation]", flush=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / 10) * max(0.0, 1 - s / a.steps))
    rng, losses, started = random.Random(0), [], time.time()
    for step in range(1, a.steps + 1):
        total = 0.0
        for _ in range(a.queries_per_step):
            query, docs, teacher = pools[rng.randrange(len(pools))]
            top = [int(i) for i in np.argsort(-teacher)[:2]]
            picked = top + rng.sample([i for i in range(len(docs)) if i not in top], min(a.passages, len(docs)) - 2)
            goal = torch.softmax(torch.from_numpy(teacher[picked]), 0)
            loss = -(goal * torch.log_softmax(scores(query, [docs[i] for i in picked]), 0)).sum() / a.queries_per_step
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(), schedule.step(), optimizer.zero_grad()
        losses.append(total)
        if step % a.eval_every == 0 or step == a.steps:
            print(f"step {step}: nDCG@10 {ndcg()[0]:.4f}, loss {np.mean(losses[-a.eval_every:]):.3f}, "
                  f"{(time.time() - started) / step:.1f} s/step", flush=True)


if __name__ == "__main__":
    main()
