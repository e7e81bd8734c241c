"""Groupwise paradigm: prompts, targets, parsing, windowed ranking, fusion; group sampling; built-in data."""

import json
import re

import pytest

from rerank_rl.data_synthesis.builtin import generate_examples, qrels_of
from rerank_rl.data_synthesis.groups import grade_mix, sample_groups
from rerank_rl.rewards.metrics import evaluate_run, rank_from_scores
from rerank_rl.rl.paradigms import get_paradigm, groupwise
from rerank_rl.rl.errors import UserError


def test_messages_number_every_passage_and_trim():
    msgs = groupwise.build_messages("q?", ["a " * 500, "short"], "reasoning", max_chars=50)
    user = msgs[1]["content"]
    assert "[1] " in user and "[2] short" in user and "[3]" not in user
    assert len(user.split("[1] ")[1].split("\n")[0]) == 50
    assert "<reason>" in msgs[0]["content"]
    assert "<reason>" not in groupwise.build_messages("q", ["x"], "answer_only")[0]["content"]
    with pytest.raises(ValueError):
        groupwise.build_messages("q", ["x"], "chatty")


@pytest.mark.parametrize("variant", groupwise.VARIANTS)
def test_gold_answer_parses_back_to_scaled_grades(variant):
    labels = [3, 0, 1, 2]
    text = groupwise.gold_answer(labels, variant)
    assert groupwise.parse(text, 4) == [10.0, 0.0, 3.0, 7.0]
    assert text.endswith("</answer>")
    assert (text.startswith("<reason>")) == (variant == "reasoning")
    # teacher scores, where given, are the target instead of the grades (rounded and clipped to 0-10)
    taught = groupwise.gold_answer(labels, variant, teacher_scores=[9.6, 0.2, 11.0, 4.49])
    assert groupwise.parse(taught, 4) == [10.0, 0.0, 10.0, 4.0]


def test_parse_clips_and_marks_missing():
    assert groupwise.parse('<answer>{"[1]": 15, "[3]": -2}</answer>', 3) == [10.0, None, 0.0]
    assert groupwise.parse("no answer at all", 2) == [None, None]


def test_windows_cover_every_position():
    for n, w, s in [(25, 10, 5), (10, 10, 5), (7, 10, 5), (23, 20, 10)]:
        wins = groupwise.windows(n, w, s)
        assert sorted({i for win in wins for i in win}) == list(range(n))
        assert all(len(win) == min(n, w) for win in wins)


def test_windows_reject_a_stride_that_skips_or_stalls():
    for window, stride in [(4, 5), (4, 0), (0, 0)]:  # stride 5 would never score position 4; stride 0 never moves
        with pytest.raises(ValueError, match="stride must be between 1 and the window"):
            groupwise.windows(10, window, stride)


def _oracle(examples):
    """A fake model that answers with the gold grade of each passage it is shown."""
    grade = {(ex["query"], t): g for ex in examples for t, g in zip(ex["doc_texts"], ex["labels"])}

    def generate(conversations, max_new_tokens):
        outs = []
        for conv in conversations:
            query = re.match(r"Query: (.*)", conv[1]["content"]).group(1)
            texts = re.findall(r"^\[\d+\] (.*)$", conv[1]["content"], flags=re.M)
            outs.append("<answer>" + json.dumps({f"[{i}]": grade[query, t] * 3 for i, t in enumerate(texts, 1)}) + "</answer>")
        return outs

    return generate


def test_rank_candidates_with_oracle_is_ideal():
    examples = generate_examples(6, candidates=12, seed=3)
    run = groupwise.rank_candidates(examples, _oracle(examples), window=5, stride=3, repeats=2)
    ranked = {q: rank_from_scores(dict(hits)) for q, hits in run.items()}
    assert evaluate_run(ranked, qrels_of(examples), metrics=["ndcg@10"])["ndcg@10"] == pytest.approx(1.0)


def test_unparseable_output_keeps_first_stage_order():
    examples = generate_examples(3, candidates=8, seed=4)
    stats: dict = {}
    run = groupwise.rank_candidates(examples, lambda convs, n: ["garbage"] * len(convs), window=4, stride=2,
                                    stats=stats)
    for ex in examples:
        assert rank_from_scores(dict(run[ex["qid"]])) == ex["doc_ids"]
    # windows of 4 moved by 2 over 8 candidates start at 0, 2, 4: 3 per query, none of 36 passages scored
    assert stats == {"windows": 9, "passages": 36, "unscored_passages": 36, "score_counts": {}}


def test_answer_stats_count_the_scores_given():
    stats = groupwise.answer_stats([[3.0, None, 10.0], [3.0, 0.0], [None]])
    assert stats == {"windows": 3, "passages": 6, "unscored_passages": 2, "score_counts": {"0": 1, "3": 2, "10": 1}}


def test_fusion_mixes_first_stage():
    fused = groupwise.fuse([1.0, 0.0], [0.0, 10.0], weight=0.6)
    assert fused == pytest.approx([0.6, 0.4])


def test_group_sampling_sizes_and_relevant_member():
    examples = generate_examples(10, candidates=10, seed=5)
    groups = sample_groups(examples, sizes=[3, 5], groups_per_query=3, seed=1)
    assert len(groups) == 30 and len({g["qid"] for g in groups}) == 30
    assert {len(g["doc_ids"]) for g in groups} <= {3, 5}
    assert all(max(g["labels"]) > 0 for g in groups)  # every group holds a passage above the lowest grade
    # the anchor is any passage above the lowest grade, not always the best: grade 3 is sometimes missing
    assert any(max(g["labels"]) < 3 for g in groups)
    assert sample_groups(examples, [3, 5], 3, seed=1) == groups  # seeded
    for g in groups:  # every aligned column follows the same members
        source = next(ex for ex in examples if ex["qid"] == g["source_qid"])
        lookup = dict(zip(source["doc_ids"], zip(source["doc_texts"], source["labels"])))
        assert [lookup[d] for d in g["doc_ids"]] == list(zip(g["doc_texts"], g["labels"]))


def test_group_sampling_mixed_fraction_and_teacher_scores():
    examples = generate_examples(40, candidates=10, seed=2)
    for ex in examples:
        ex["teacher_scores"] = [float(10 - i) for i in range(len(ex["doc_ids"]))]
    plain = sample_groups(examples, sizes=[2], groups_per_query=2, seed=0, mixed_fraction=0.0)
    mixed = sample_groups(examples, sizes=[2], groups_per_query=2, seed=0, mixed_fraction=1.0)
    flat = lambda groups: sum(max(g["labels"]) == 0 for g in groups)  # noqa: E731
    assert flat(mixed) == 0 and flat(plain) > 10  # most pool passages are grade 0: random pairs often miss
    for g in mixed:
        source = next(ex for ex in examples if ex["qid"] == g["source_qid"])
        assert g["teacher_scores"] == [source["teacher_scores"][source["doc_ids"].index(d)] for d in g["doc_ids"]]
    mix = grade_mix(mixed)
    assert mix["groups"] == 80 and sum(mix["passages_per_grade"].values()) == 160
    with pytest.raises(ValueError, match="mixed_fraction"):
        sample_groups(examples, [2], 1, mixed_fraction=1.5)


def test_builtin_data_has_lexical_hard_negatives():
    examples = generate_examples(20, candidates=10, seed=0)
    for ex in examples:
        assert sorted(ex["labels"], reverse=True)[0] == 3
        assert len(set(ex["doc_texts"])) == len(ex["doc_texts"])
        entity = next(w for w in ex["query"].rstrip("?").split() if w[0].isupper())  # the invented name
        answer = ex["doc_texts"][ex["labels"].index(3)]
        assert entity in answer  # one spelling of the invented name in query and passages
        rivals = [t for t, g in zip(ex["doc_texts"], ex["labels"]) if g == 0 and entity not in t]
        assert rivals  # hard negatives: other entities, the same attribute
    first_stage = evaluate_run({e["qid"]: e["doc_ids"] for e in examples}, qrels_of(examples), rel_level=2)
    assert 0.4 < first_stage["ndcg@10"] < 0.95  # informative but far from perfect


def test_unknown_paradigm():
    with pytest.raises(UserError, match="unknown paradigm"):
        get_paradigm("telepathic")


def test_bf16_autocast_setting(monkeypatch):
    from rerank_rl.rl.stages import common

    assert common.use_bf16_autocast(True) and not common.use_bf16_autocast(False)
    monkeypatch.setattr(common, "cpu_has_bf16", lambda: True)
    assert common.use_bf16_autocast("auto") is True  # no GPU here: auto follows the CPU's bf16 units
    monkeypatch.setattr(common, "cpu_has_bf16", lambda: False)
    assert common.use_bf16_autocast("auto") is False


def test_prepare_keeps_teacher_scores_when_the_first_source_has_none(tmp_path):
    from datasets import Dataset, load_from_disk

    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.stages.prepare import prepare_data

    taught = generate_examples(6, candidates=6, seed=9, prefix="t")
    for ex in taught:
        ex["teacher_scores"] = [float(10 - i) for i in range(len(ex["doc_ids"]))]
    Dataset.from_list(taught).save_to_disk(str(tmp_path / "pools"))
    config = load_recipe(CONFIG_DIR / "grouprank_tiny.yaml", [
        f"data.train=[{{format: builtin, num_queries: 4, depth: 6}}, {{format: dataset, path: {tmp_path / 'pools'}}}]"])
    prepare_data(config, tmp_path / "run")
    groups = [dict(g) for g in load_from_disk(str(tmp_path / "run" / "data" / "train_groups"))]
    assert any(g["teacher_scores"] is None for g in groups)  # builtin groups: grades become the targets
    with_scores = [g for g in groups if g["teacher_scores"] is not None]
    assert with_scores and all(len(g["teacher_scores"]) == len(g["doc_ids"]) for g in with_scores)
