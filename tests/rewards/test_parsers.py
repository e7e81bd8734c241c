"""Output parsers: what they recover, which flags they set, and that slips are repaired."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_rl.rewards.parsers import (
    answer_span,
    check_tags,
    parse_choice,
    parse_grade,
    parse_labels,
    parse_permutation,
    parse_scores,
)

RA = ("reason", "answer")


def test_check_tags():
    assert check_tags("<think>a</think>\n<answer>b</answer>\n")
    assert check_tags("prefilled text <think>a</think><answer>b</answer>")
    assert not check_tags("<answer>b</answer><think>a</think>")  # order
    assert not check_tags("<think>a</think><answer>b</answer> trailing")
    assert not check_tags("<think>a</think><think>x</think><answer>b</answer>")  # twice
    assert not check_tags("<think>a<answer>b</answer>")  # unclosed
    assert check_tags("<answer></answer>", ("answer",))


def test_answer_span_last_block_and_unclosed():
    assert answer_span("<answer>1</answer> <ANSWER>2</ANSWER>") == "2"
    assert answer_span("x <answer> 3 ") == " 3 "
    assert answer_span("none") is None


@pytest.mark.parametrize(
    "text, value, format_ok",
    [
        ('<reason>r</reason><answer>{"[1]": 7, "[2]": 0}</answer>', {1: 7.0, 2: 0.0}, True),
        ('<reason>r</reason><answer>{"1": 7, "[2]": 0.5}</answer>', {1: 7.0, 2: 0.5}, True),
        ('<reason>r</reason><answer>{"[7]]": 3, "[2]": 1,}</answer>', {7: 3.0, 2: 1.0}, False),
        ('<reason>r</reason><answer>{"[1]": 4, "[2]": 2</answer>', {1: 4.0, 2: 2.0}, False),
        ("<reason>r</reason><answer>{[3]: 1, [4]: 2}</answer>", {3: 1.0, 4: 2.0}, False),
        ("<reason>r</reason><answer>{'[3]': 1}</answer>", {3: 1.0}, False),
        ('<reason>r</reason><answer>```json\n{"[2]": 5}\n```</answer>', {2: 5.0}, True),
        ('<reason>{"[9]": 1}</reason><answer>[1]: 5, [2]: 3</answer>', {1: 5.0, 2: 3.0}, False),
        ('<reason>r</reason><answer>{"[2]": 9, "[2]": 0, "[1]": 1}</answer>', {2: 9.0, 1: 1.0}, True),
        ('<reason>r</reason><answer>{"[1]": "7", "[2]": NaN, "[3]": "x"}</answer>', {1: 7.0}, False),
    ],
)
def test_parse_scores(text, value, format_ok):
    parsed = parse_scores(text, RA)
    assert parsed.ok and parsed.value == value
    assert parsed.tags_ok
    assert parsed.format_ok is format_ok


def test_parse_scores_sources_and_failures():
    # No tags: the last {...} of the text, with first-kept duplicates.
    parsed = parse_scores('think {"[1]": 2} then {"[3]": 4, "[3]": 5}', RA)
    assert parsed.ok and parsed.value == {3: 4.0} and not parsed.tags_ok and not parsed.format_ok
    unclosed = parse_scores('<reason>r</reason><answer>{"[1]": 4, "[2]": 2', RA)
    assert unclosed.value == {1: 4.0, 2: 2.0} and not unclosed.tags_ok
    # The last fenced json block wins over earlier objects.
    assert parse_scores('{"[1]": 1}\n```json\n{"[2]": 2}\n```').value == {2: 2.0}
    for bad in ("", "<answer></answer>", "<answer>{}</answer>", '{"[1]": 1e999}', "[" * 50_000, None, "}{"):
        parsed = parse_scores(bad)
        assert not parsed.ok and parsed.value is None and not parsed.format_ok


def test_parse_scores_strict_accepts_json_only():
    for text in ("<answer>Passage 1: 9 points</answer>", "<answer>{[1]: 9}</answer>", "<answer>{'[1]': 9}</answer>",
                 '<answer>{"[1]": 9,}</answer>', "<answer>[1]: 5, [2]: 3</answer>"):
        assert parse_scores(text).ok and not parse_scores(text, strict=True).ok, text
    for text, value in (('<answer>{"[7]]": 3, "[2]": 1}</answer>', {7: 3.0, 2: 1.0}),  # the spec's repairs
                        ('<answer>{"[1]": 4, "[2]": 2</answer>', {1: 4.0, 2: 2.0}),
                        ('<answer>```json\n{"[2]": 5}\n```</answer>', {2: 5.0})):
        assert parse_scores(text, strict=True).value == value, text


def test_parse_choice():
    assert parse_choice("<think>a</think><answer>[3]</answer>").value == 3
    assert parse_choice("<think>a</think><answer>[3]</answer>").format_ok
    bare = parse_choice("<think>a</think><answer>3</answer>")
    assert bare.ok and bare.value == 3 and not bare.format_ok
    assert not parse_choice("<think>a</think><answer>[3] or [4]</answer>").ok
    assert parse_choice("<answer>[3] ... [3]</answer>").value == 3
    assert not parse_choice("I pick [3]").ok  # no answer block
    assert not parse_choice("<think>a</think><answer></answer>").ok


def test_parse_grade():
    assert parse_grade("<think>a</think><answer> 7 </answer>").value == 7
    assert parse_grade("<think>a</think><answer>7</answer>").format_ok
    loose = parse_grade("<think>a</think><answer>score: 10</answer>")
    assert loose.ok and loose.value == 10 and not loose.format_ok
    for bad in ("<answer>11</answer>", "<answer>-1</answer>", "<answer>7.5</answer>", "<answer>3 or 4</answer>", "7"):
        assert not parse_grade(bad).ok
    assert parse_grade("<answer>15</answer>", low=0, high=20).value == 15


def test_parse_permutation():
    chain = parse_permutation("<think>a</think><answer>[3] > [1] > [2]</answer>")
    assert chain.value == [3, 1, 2] and chain.format_ok
    listed = parse_permutation("<think>a</think><answer>[3, 1, 2]</answer>")
    assert listed.value == [3, 1, 2] and listed.format_ok
    assert parse_permutation("<answer>[2] > [2] > [9]</answer>").value == [2, 2, 9]  # kept as written
    loose = parse_permutation("<think>a</think><answer>best is [2], then [1]</answer>")
    assert loose.value == [2, 1] and not loose.format_ok
    assert parse_permutation("[2] > [1]").value == [2, 1]  # no tags: the whole text
    assert parse_permutation("ranking: 4, 1").value == [4, 1]
    assert not parse_permutation("<answer></answer>").ok
    assert not parse_permutation("").ok


def test_parse_labels():
    parsed = parse_labels('<answer>["Sports", "sports", " politics "]</answer>')
    assert parsed.value == ["Sports", "politics"] and parsed.format_ok
    assert parse_labels("<answer>a, b; c\nd</answer>").value == ["a", "b", "c", "d"]
    empty = parse_labels("<answer></answer>")
    assert empty.ok and empty.value == [] and empty.format_ok
    assert parse_labels("sports").value == ["sports"]
    assert not parse_labels("").ok and not parse_labels("  ").ok


# The shortcuts in `_loads` and `answer_span` must agree with the plain definitions they speed up.
_JSON_PIECES = ['"[1]"', '"[2]"', '"1"', '"a:b"', ":", ": ", ",", ", ", "{", "}", "[", "]", "7", "-0", "0.5", "1e999",
                "null", "true", '"x"', " ", "\n", '{"[1]": 1}', '{"[1]": 1, "[1]": 2}', "[3]", '"[1]": 9']
_TAG_PIECES = ["<answer>", "</answer>", "<ANSWER>", "</Answer>", "<anſwer>", "<answer", "answer>", "<", ">", "x",
               "{", "}", " ", "\n", "é"]


def _reference_loads(text):
    from rerank_rl.rewards.parsers import _DECODER

    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None


def _reference_span(text, tag="answer"):
    import re

    matches = list(re.finditer(re.escape(f"<{tag}>"), text, re.IGNORECASE))
    if not matches:
        return None
    end = re.compile(re.escape(f"</{tag}>"), re.IGNORECASE).search(text, matches[-1].end())
    return text[matches[-1].end() :] if end is None else text[matches[-1].end() : end.start()]


@settings(max_examples=600, deadline=None, database=None)
@given(st.lists(st.sampled_from(_JSON_PIECES), max_size=14).map("".join))
def test_loads_shortcut_keeps_first_of_repeated_keys(text):
    from rerank_rl.rewards.parsers import _loads

    assert repr(_loads(text)) == repr(_reference_loads(text))  # repr: -0.0 vs 0 and key order count too


def test_loads_shortcut_cases():
    from rerank_rl.rewards.parsers import _loads

    assert _loads('{"[1]": 1, "[1]": 2}') == {"[1]": 1}
    assert _loads('{"a:b": 1, "c": 2, "c": 3}') == {"a:b": 1, "c": 2}  # a colon in a string
    assert _loads('{"a": {"b": 1, "b": 2}}') == {"a": {"b": 1}}  # nested repeats
    assert _loads('[{"b": 1, "b": 2}]') == [{"b": 1}]
    assert _loads("{") is None


@settings(max_examples=600, deadline=None, database=None)
@given(st.lists(st.sampled_from(_TAG_PIECES), max_size=12).map("".join))
def test_answer_span_shortcut_matches_definition(text):
    assert answer_span(text) == _reference_span(text)
    assert answer_span(text, "Answer") == _reference_span(text, "Answer")
