"""Does a model's score slot already carry relevance? A linear-probe ceiling, before any training is spent.

For single-passage groupwise prompts (`evaluate.window: 1`), the hidden state at the position that predicts the
score is read at several layers; a logistic regression per layer (relevant = grade >= 2) is fit on one labelled
ranking set and ranks another. If no layer's probe beats the first stage, the representation the LM head reads
holds no usable relevance signal, and a short CPU fine-tune has to build one from scratch rather than expose it.
The untrained model's own expected score (what evaluation reads) is printed beside.

    python benchmarks/probe_slot_signal.py [--model NAME_OR_DIR] [--train-run DL21 JSON --train-qrels QRELS]
        [--test-run DL19 JSON --test-qrels QRELS] [--train-per-query 24] [--test-queries 20] [--threads 2]

Defaults: the default model, train on DL21 (judged passages), test on the first 20 DL19 queries' BM25 top-100.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trec_dl"
LAYERS = (8, 12, 16, 20, 24, -1)


def slot_features(model, tokenizer, query: str, passages: list[str], max_chars: int, batch_size: int = 16):
    """(hidden states at the score slot, one row per passage and layer; the model's expected 0-9 score)."""
    import numpy as np
    import torch

    from rerank_rl.rl.paradigms import groupwise
    from rerank_rl.rl.scoring import digit_token_ids, left_pad, slot_chunk

    digits = digit_token_ids(tokenizer)
    states, expected = [], []
    for start in range(0, len(passages), batch_size):
        texts = [tokenizer.apply_chat_template(groupwise.build_messages(query, [p], "answer_only", max_chars),
                                               tokenize=False, add_generation_prompt=True) + slot_chunk(1)
                 for p in passages[start:start + batch_size]]
        rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        ids, mask = (torch.tensor(t) for t in left_pad(rows, tokenizer.pad_token_id))
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                        output_hidden_states=True, logits_to_keep=1)
        states.append(torch.stack([out.hidden_states[layer][:, -1] for layer in LAYERS], 1).float().numpy())
        expected.append(out.logits[:, -1, digits].float().softmax(-1).numpy() @ np.arange(10))
    return np.concatenate(states), np.concatenate(expected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--train-run", type=Path, default=DATA / "BM25" / "retrieve_results_dl21.json")
    parser.add_argument("--train-qrels", type=Path, default=DATA / "qrels" / "qrels.dl21-passage.txt")
    parser.add_argument("--test-run", type=Path, default=DATA / "BM25" / "retrieve_results_dl19.json")
    parser.add_argument("--test-qrels", type=Path, default=DATA / "qrels" / "qrels.dl19-passage.txt")
    parser.add_argument("--train-per-query", type=int, default=24, help="judged passages drawn per training query")
    parser.add_argument("--test-queries", type=int, default=20)
    parser.add_argument("--max-chars", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.data_synthesis.readers import read_qrels, read_rank_llm
    from rerank_rl.rl.evaluate import score_runs
    from rerank_rl.rl.models import resolve_model

    torch.set_num_threads(args.threads)
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    started = time.time()

    train_qrels = read_qrels(args.train_qrels)
    rng = random.Random(0)
    features, grades = [], []
    for ex in read_rank_llm(args.train_run, train_qrels):
        judged = [i for i, d in enumerate(ex["doc_ids"]) if d in train_qrels.get(ex["qid"], {})]
        picked = rng.sample(judged, min(args.train_per_query, len(judged)))
        x, _ = slot_features(model, tokenizer, ex["query"], [ex["doc_texts"][i] for i in picked], args.max_chars)
        features.append(x)
        grades += [ex["labels"][i] for i in picked]
    x_train, y_train = np.concatenate(features), np.array(grades)
    print(f"train: {len(y_train)} passages, grades 0-3: {np.bincount(y_train, minlength=4).tolist()} "
          f"({time.time() - started:.0f} s)", flush=True)

    test_qrels = read_qrels(args.test_qrels)
    tests = read_rank_llm(args.test_run, test_qrels)[:args.test_queries]
    test_x, test_expected = zip(*(slot_features(model, tokenizer, ex["query"], ex["doc_texts"], args.max_chars)
                                  for ex in tests))
    print(f"test: {len(tests)} queries x {len(tests[0]['doc_ids'])} candidates ({time.time() - started:.0f} s)")

    qrels = {ex["qid"]: test_qrels.get(ex["qid"], {}) for ex in tests}

    def ndcg(scores) -> float:
        run = {ex["qid"]: list(zip(ex["doc_ids"], map(float, s))) for ex, s in zip(tests, scores)}
        return score_runs({"run": run}, qrels, 2, metrics=["ndcg@10"])["run"]["ndcg@10"]

    print(f"first stage {ndcg([ex['first_stage_scores'] for ex in tests]):.4f}   "
          f"model's expected score {ndcg(test_expected):.4f}")
    for column, layer in enumerate(LAYERS):
        scaler = StandardScaler().fit(x_train[:, column])
        probe = LogisticRegression(C=0.01, max_iter=2000).fit(scaler.transform(x_train[:, column]), y_train >= 2)
        scores = [probe.decision_function(scaler.transform(x[:, column])) for x in test_x]
        print(f"probe at layer {'last' if layer == -1 else layer}: {ndcg(scores):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
