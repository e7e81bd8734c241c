"""Training probes: does the model's score follow relevance while it trains?

A falling SFT loss says nothing about ranking (DESIGN.md §6: the loss fell 0.79 -> 0.18 while every passage got the
same score). So every `evaluate.probe_every` steps of SFT and of RL, at each stage's start and at its end, the live
model scores a small fixed probe set: the first `evaluate.probe_queries` evaluation lists, each cut to one window of
`evaluate.window` passages. The mean 0-10 score per gold grade, the spread of the answers and the parse failures
go to the trainer's log (trainer_state.json and tensorboard, keys `probe/...`) and to run_dir/metrics/probe.jsonl.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from pathlib import Path

from rerank_rl.data_synthesis.builtin import qrels_of
from rerank_rl.rl.generation import HFGenerator
from rerank_rl.rl.orchestration import is_main_process
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.serving import inference_settings, rank_with

PROBE_FILE = "probe.jsonl"  # under run_dir/metrics
STAGE_ORDER = ("sft", "rl")


def grade_means(run: dict[str, list[tuple[str, float]]], qrels: dict[str, dict[str, int]]):
    """Mean ranking score x10 of the passages of each gold grade (unjudged passages count as grade 0, as in
    trec_eval), and how many passages each mean covers: ({"0": mean, ...}, {"0": count, ...}).

    A passage's ranking score is the mean of score/10 over the windows that held it (minus a 1e-6 tie-break), so
    x10 is its mean 0-10 score (the answer, or its expectation under `scoring: expected`); a passage left unscored
    counts as 0, as it does in the ranking. Fused scores mix in the first stage and are not answers."""
    totals: dict[int, float] = defaultdict(float)
    counts: Counter = Counter()
    for qid, hits in run.items():
        grades = qrels.get(qid, {})
        for doc, score in hits:
            grade = grades.get(doc, 0)
            totals[grade] += 10 * score
            counts[grade] += 1
    grades = sorted(counts)
    # + 0.0: a mean of zeros less the tie-break rounds to -0.0
    return {str(g): round(totals[g] / counts[g], 3) + 0.0 for g in grades}, {str(g): counts[g] for g in grades}


def score_std(score_counts: dict[str, int]) -> float:
    """Population std of the scores given ({"score": times}): near 0 when the model answers one score for all."""
    total = sum(score_counts.values())
    if not total:
        return 0.0
    mean = sum(float(s) * n for s, n in score_counts.items()) / total
    return round(math.sqrt(sum(n * (float(s) - mean) ** 2 for s, n in score_counts.items()) / total), 3)


PROBE_MIN_PASSAGES = 10


def probe_examples(examples: list[dict], queries: int, window: int) -> list[dict]:
    """The first `queries` lists, each cut to its first `window` passages: one window per list, so every passage's
    score is one answer of the model. Small windows (single passages) keep PROBE_MIN_PASSAGES per list, so the probe
    still sees several grades of each query."""
    window = max(window, PROBE_MIN_PASSAGES)
    cut = ("doc_ids", "doc_texts", "labels", "first_stage_scores")
    return [{**ex, **{k: list(ex[k])[:window] for k in cut if k in ex}} for ex in examples[:queries]]


def run_probe(model, tokenizer, examples: list[dict], config) -> dict:
    """Score `examples` with the live model, ranked as the evaluate stage ranks (same scoring and decoding) but
    without fusion or repeats, so every score is the model's answer; returns the record probe.jsonl holds, without
    stage and step."""
    settings = {**inference_settings(config), "repeats": 1, "fusion_weight": None}
    generator = HFGenerator(model, tokenizer, batch_size=settings["batch_size"], progress=False)
    was_training, padding_side = model.training, tokenizer.padding_side
    answers: dict = {}
    model.eval()  # no dropout while probing, whichever scoring path runs
    try:
        run = rank_with(get_paradigm(config.paradigm), generator, examples, config.variant, settings, answers)
    finally:
        model.train(was_training)  # the trainer's model goes back to training
        tokenizer.padding_side = padding_side  # HFGenerator pads left; the trainer's collator keeps its own side
    means, counts = grade_means(run, qrels_of(examples))
    return {"queries": len(examples), "passages": answers["passages"], "grade_means": means, "grade_counts": counts,
            "unscored_passages": answers["unscored_passages"], "score_counts": answers["score_counts"],
            "score_std": score_std(answers["score_counts"])}


def read_probes(run_dir: Path) -> list[dict]:
    """The probe records of a run in training order (SFT, then RL, by step). A resumed stage probes again the steps
    after its last checkpoint: the later record of a step wins."""
    path = Path(run_dir) / "metrics" / PROBE_FILE
    if not path.exists():
        return []
    records = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # blank, or torn by a kill mid-write
            continue
        records[(record["stage"], record["step"])] = record
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    return sorted(records.values(), key=lambda r: (order.get(r["stage"], len(order)), r["step"]))


def log_scalars(record: dict) -> dict[str, float]:
    """The flat numbers a probe adds to the trainer's log (tensorboard drops anything but scalars)."""
    scalars = {f"probe/grade_{g}_mean": m for g, m in record["grade_means"].items()}
    scalars["probe/score_std"] = record["score_std"]
    scalars["probe/unscored_passages"] = float(record["unscored_passages"])
    return scalars


class ProbeHooks:
    """TrainerCallback hooks, joined to transformers' TrainerCallback in `attach_probe` (so importing this module
    stays torch-free for the driver and the report). Probes at the first step (not on resume: the interrupted run
    probed it), every `probe_every` steps and at the last step, and logs each probe as its own row of log_history
    and tensorboard at the step it describes."""

    def __init__(self, trainer, config, run_dir: Path, stage: str):
        from datasets import load_from_disk

        self.trainer, self.config, self.stage = trainer, config, stage
        self.every = config.evaluate.probe_every
        self.path = Path(run_dir) / "metrics" / PROBE_FILE
        examples = [dict(row) for row in load_from_disk(str(Path(run_dir) / "data" / "eval"))]
        self.examples = probe_examples(examples, config.evaluate.probe_queries, config.evaluate.window)
        self.last_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self._probe(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        step = state.global_step
        if step != self.last_step and (step % self.every == 0 or step >= state.max_steps):
            self._probe(state)

    def on_train_end(self, args, state, control, **kwargs):
        if state.global_step != self.last_step:  # the last step was not logged (logging_steps > 1)
            self._probe(state)

    def _probe(self, state) -> None:
        from transformers import Trainer

        self.last_step = state.global_step  # first: logging below calls on_log again
        if not self.examples or not is_main_process():
            return
        started = time.time()
        record = run_probe(self.trainer.model, self.trainer.processing_class, self.examples, self.config)
        record = {"stage": self.stage, "step": state.global_step, **record,
                  "seconds": round(time.time() - started, 2)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        # The base Trainer.log on purpose: TRL's override would also copy the step's pending metrics (rewards,
        # zero-variance counts, ...) into this row, and sums over the log would count them twice.
        Trainer.log(self.trainer, log_scalars(record))


def attach_probe(trainer, config, run_dir: Path, stage: str) -> None:
    """Add a ProbeCallback to a transformers/TRL trainer when the recipe asks for probes. Added after the trainer
    is built because the callback logs through the trainer itself."""
    from transformers import TrainerCallback
    from transformers.integrations import is_deepspeed_zero3_enabled

    section = config.evaluate
    # Under ZeRO-3 each rank holds a shard of the weights: generating on the main rank alone would wait forever.
    if section.enabled and section.probe_every > 0 and section.probe_queries > 0 and not is_deepspeed_zero3_enabled():
        callback = type("ProbeCallback", (ProbeHooks, TrainerCallback), {})
        trainer.add_callback(callback(trainer, config, run_dir, stage))
