"""A short markdown report of a run, with PNG plots: metrics before vs after, and "Does it learn?": the mean score
per gold grade over training (rl/probe.py), the SFT loss, RL rewards, answer spread and parse failures."""

from __future__ import annotations

import json
from pathlib import Path

from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.probe import read_probes, score_std

# Separated, on the 0-10 scale: the top grade averages at least MARGIN above the lowest grade, and no grade
# averages more than SLACK below a lower one (the scores rise with the grade, give or take noise).
MARGIN, SLACK = 1.0, 0.5
MAX_TABLE_PROBES = 12  # longer runs show evenly spaced probes in the table (the plot shows all)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    _pyplot().close(fig)


def _log_history(stage_dir: Path) -> list[dict]:
    path = stage_dir / "trainer_state.json"
    return json.loads(path.read_text()).get("log_history", []) if path.exists() else []


def _series(history: list[dict], key: str) -> list[tuple[int, float]]:
    return [(row["step"], row[key]) for row in history if row.get(key) is not None]


def separation(means: dict[str, float], where: str) -> str:
    """One plain sentence: do the per-grade mean scores (0-10) separate relevant from irrelevant passages?"""
    grades = sorted(means, key=float)
    if len(grades) < 2:
        return f"Only grade {grades[0] if grades else '-'} occurs {where}, so separation cannot be judged."
    low, top = grades[0], grades[-1]
    gap = means[top] - means[low]
    if gap < MARGIN:
        return (f"The per-grade means did not separate: the model does not yet tell relevant from irrelevant "
                f"passages ({where}, grade {top} averages {means[top]:.1f} and grade {low} {means[low]:.1f} "
                f"out of 10, a gap of {gap:.1f}).")
    drops = [(means[g] - means[h], g, h) for i, g in enumerate(grades) for h in grades[i + 1:]
             if means[g] - means[h] > SLACK]
    if drops:
        drop, lower, higher = max(drops)
        return (f"The per-grade means separated only partly: {where}, grade {top} averages {gap:.1f} points above "
                f"grade {low}, but grade {higher} averages {drop:.1f} below grade {lower}, so the scores do not yet "
                f"rise with the grade.")
    return (f"The per-grade means separated: {where}, the mean score rises with the gold grade, from "
            f"{means[low]:.1f} (grade {low}) to {means[top]:.1f} (grade {top}) out of 10: the model tells relevant "
            f"from irrelevant passages.")


def _verdict(after: dict | None, probes: list[dict]) -> str:
    """Judge the evaluation set after training when its scores are answers (no fusion), else the last probe; say
    so when most passages got no score, since those count as 0 in every grade."""
    if after and after.get("grade_means") and not after.get("grade_means_fused"):
        means, where, answers = after["grade_means"], "on the evaluation set after training", after.get("answers", {})
    elif probes:
        last = probes[-1]
        means, where, answers = last["grade_means"], f"at the last probe ({last['stage']} step {last['step']})", last
    else:
        return ""
    unscored, passages = answers.get("unscored_passages", 0), answers.get("passages", 0)
    parse = (f" {unscored} of {passages} passages got no score: the answers mostly do not parse yet."
             if passages and 2 * unscored > passages else "")
    return separation(means, where) + parse


def _thin(probes: list[dict]) -> list[dict]:
    """At most about MAX_TABLE_PROBES rows: evenly spaced, always the first and last probe of each stage."""
    if len(probes) <= MAX_TABLE_PROBES:
        return probes
    every = -(-len(probes) // MAX_TABLE_PROBES)
    edges = {i for i, p in enumerate(probes) if i in (0, len(probes) - 1)
             or p["stage"] != probes[i - 1]["stage"] or p["stage"] != probes[min(i + 1, len(probes) - 1)]["stage"]}
    return [p for i, p in enumerate(probes) if i % every == 0 or i in edges]


def _eval_row(name: str, metrics: dict | None) -> tuple | None:
    if not (metrics and metrics.get("grade_means")):
        return None
    fused = " (fused with the first stage)" if metrics.get("grade_means_fused") else ""
    answers = metrics.get("answers", {})
    # groupwise counts scores and unscored passages; pointwise counts grades and unparsed answers; setwise picks
    # (no score to spread: std left blank)
    counts = answers.get("score_counts", answers.get("grade_counts"))
    return (f"{name} training, evaluation set{fused}", metrics["grade_means"],
            score_std(counts) if counts is not None else None,
            answers.get("unscored_passages", answers.get("unparsed", "?")), answers.get("passages", "?"))


def _grade_table(before: dict | None, probes: list[dict], after: dict | None) -> list[str]:
    """Rows: the evaluation set before training, each (shown) probe, the evaluation set after training."""
    shown = _thin(probes)
    rows = [(f"probe, {p['stage']} step {p['step']}" + (" (before)" if i == 0 else " (after)" if i == len(shown) - 1
             else ""), p["grade_means"], p["score_std"], p["unscored_passages"], p["passages"])
            for i, p in enumerate(shown)]
    rows = [row for row in (_eval_row("before", before), *rows, _eval_row("after", after)) if row]
    if not rows:
        return []
    grades = sorted({g for row in rows for g in row[1]}, key=float)
    lines = ["| when | " + " | ".join(f"grade {g}" for g in grades) + " | answer std | unscored |",
             "|---" * (len(grades) + 3) + "|"]
    for label, means, std, unscored, passages in rows:
        cells = [f"{means[g]:.2f}" if g in means else "-" for g in grades]
        spread = "-" if std is None else f"{std:.2f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {spread} | {unscored}/{passages} |")
    return lines


def _plot_probes(probes: list[dict], out: Path) -> None:
    """Mean score per grade against the training step, SFT then RL on one axis (RL steps follow the last SFT step)."""
    plt = _pyplot()
    offset, xs, boundary = 0, [], None
    for i, probe in enumerate(probes):
        if i and probe["stage"] != probes[i - 1]["stage"]:
            offset, boundary = xs[-1], xs[-1]
        xs.append(offset + probe["step"])
    fig, ax = plt.subplots(figsize=(7, 4))
    for grade in sorted({g for p in probes for g in p["grade_means"]}, key=float):
        points = [(x, p["grade_means"][grade]) for x, p in zip(xs, probes) if grade in p["grade_means"]]
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=f"grade {grade}")
    if boundary is not None:
        ax.axvline(boundary, color="grey", linestyle="--")
        ax.text(boundary, 10.2, f" {probes[-1]['stage']} starts", fontsize=8, color="grey")
    ax.set_ylim(-0.3, 10.8)
    ax.set_xlabel(" then ".join(dict.fromkeys(p["stage"].upper() for p in probes)) + " step")
    ax.set_ylabel("mean score (0-10) on the probe set")
    ax.legend(fontsize=8)
    _save(fig, out)


def _plot_sft_loss(points: list[tuple[int, float]], out: Path) -> None:
    fig, ax = _pyplot().subplots(figsize=(7, 3))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
    ax.set_xlabel("SFT step")
    ax.set_ylabel("loss")
    _save(fig, out)


def _reward_components(history: list[dict]) -> list[str]:
    return sorted({k for row in history for k in row if k.startswith("reward_components/")})


def _plot_rewards(history: list[dict], out: Path) -> bool:
    """Reward mean per RL step with a band of one std over the step's completions, and each reward component."""
    reward, spread = dict(_series(history, "reward")), dict(_series(history, "reward_std"))
    components = _reward_components(history)
    if not reward and not components:
        return False
    fig, ax = _pyplot().subplots(figsize=(7, 4))
    if reward:
        steps = sorted(reward)
        ax.plot(steps, [reward[s] for s in steps], marker="o", color="black", label="reward (mean)")
        if spread:
            ax.fill_between(steps, [reward[s] - spread.get(s, 0) for s in steps],
                            [reward[s] + spread.get(s, 0) for s in steps], color="grey", alpha=0.25, label="+- std")
    for key in components:
        points = _series(history, key)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key.removeprefix("reward_components/"))
    ax.set_xlabel("RL step")
    ax.set_ylabel("over the step's completions")
    ax.legend(fontsize=7)
    _save(fig, out)
    return True


def _spread(label: str, record: dict) -> str:
    given = ", ".join(f"{score} x{n}" for score, n in record["score_counts"].items()) or "none"
    return (f"- {label}: {given} (std {record['score_std']:.2f}); {record['unscored_passages']} of "
            f"{record['passages']} passages unscored")


def _rl_lines(history: list[dict]) -> list[str]:
    reward, spread = _series(history, "reward"), dict(_series(history, "reward_std"))
    lines = []
    if reward:
        (s0, r0), (s1, r1) = reward[0], reward[-1]
        lines.append(f"RL reward (mean +- std over a step's completions): {r0:.3f} +- {spread.get(s0, 0):.3f} (step "
                     f"{s0}) -> {r1:.3f} +- {spread.get(s1, 0):.3f} (step {s1}).")
    parts = []
    for key in _reward_components(history):
        points = _series(history, key)
        parts.append(f"{key.removeprefix('reward_components/')} {points[0][1]:.3f} -> {points[-1][1]:.3f}")
    if parts:
        lines.append("Reward components (first -> last step): " + "; ".join(parts) + ".")
    zero = _series(history, "zero_variance_groups")
    if zero:
        share = [v for _, v in _series(history, "frac_zero_variance")]
        mean_share = f" (on average {100 * sum(share) / len(share):.0f}% of a step's groups)" if share else ""
        lines.append(f"Zero-variance groups filtered out of the loss: {sum(v for _, v in zero):.0f}{mean_share}; "
                     f"they teach nothing.")
    return lines


def _learning_section(run_dir: Path, before: dict | None, after: dict | None) -> list[str]:
    """"Does it learn?": per-grade means before / during / after training, then what drove them."""
    probes = read_probes(run_dir)
    sft = _series(_log_history(run_dir / "sft"), "loss")
    rl = _log_history(run_dir / "rl")
    table = _grade_table(before, probes, after)
    if not (table or sft or rl):
        return []
    lines = ["## Does it learn?", ""]
    verdict = _verdict(after, probes)
    if verdict:
        lines += [verdict, f"(Separated: the top grade averages at least {MARGIN:.1f} point above the lowest "
                           f"grade, and no grade more than {SLACK:.1f} below a lower one.)", ""]
    if table:
        probe_note = (f" Probes score the first {probes[0]['queries']} evaluation lists, {probes[0]['passages']} "
                      f"passages, one window each, with the live model." if probes else "")
        lines += ["Mean score (0-10) per gold grade; unscored passages count as 0." + probe_note, "", *table, ""]
    if probes:
        _plot_probes(probes, run_dir / "probe.png")
        lines += ["![mean score per grade over training](probe.png)", "", "Answers on the probe set:",
                  _spread(f"first probe ({probes[0]['stage']} step {probes[0]['step']})", probes[0]),
                  _spread(f"last probe ({probes[-1]['stage']} step {probes[-1]['step']})", probes[-1]), ""]
    if sft:
        _plot_sft_loss(sft, run_dir / "sft_loss.png")
        lines += [f"SFT loss: {sft[0][1]:.3f} (first step) -> {sft[-1][1]:.3f} (last step). A falling loss alone "
                  "does not mean the scores follow relevance: compare the grades above.", "",
                  "![SFT loss](sft_loss.png)", ""]
    if rl:
        lines += _rl_lines(rl) + [""]
        if _plot_rewards(rl, run_dir / "rewards.png"):
            lines += ["![RL reward and its components per step](rewards.png)", ""]
    return lines


def _plot_metrics(before: dict, after: dict, out: Path) -> None:
    plt = _pyplot()
    names = [k for k in after["reranked"] if k != "queries"]
    series = {"first stage": after["first_stage"], "before training": before["reranked"] if before else None,
              "after training": after["reranked"]}
    series = {k: v for k, v in series.items() if v}
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        ax.bar([j + i * width for j in range(len(names))], [values[n] for n in names], width, label=label)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylim(0, 1)
    ax.legend()
    _save(fig, out)


def _table(rows: dict[str, dict]) -> str:
    names = [k for k in next(iter(rows.values())) if k != "queries"]
    lines = ["| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(f"{v[n]:.4f}" for n in names) + " |" for label, v in rows.items()]
    return "\n".join(lines)


def _answers_line(label: str, metrics: dict | None) -> str:
    """One line on what the model answered: a model that gives every passage one score cannot reorder anything."""
    answers = (metrics or {}).get("answers")
    if not answers or not answers.get("passages"):
        return ""
    # Metrics written before the paradigm was recorded all came from groupwise runs.
    paradigm = get_paradigm(metrics.get("paradigm", "groupwise"))
    return f"- {label}: {paradigm.describe_answers(answers)}"


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    metrics_dir = run_dir / "metrics"
    load = lambda name: json.loads((metrics_dir / f"{name}.json").read_text()) if (metrics_dir / f"{name}.json").exists() else None  # noqa: E731
    before, after = load("before"), load("after")
    lines = [f"# Run report: {run_dir.name}", ""]
    if after:
        rows = {"first stage": after["first_stage"]}
        if before:
            rows["before training"] = before["reranked"]
        rows["after training"] = after["reranked"]
        fusion = f"on (weight {after['fusion_weight']})" if after["fusion"] else "off"
        lines += [f"Evaluation on {after['reranked']['queries']} queries; binary relevance: grade >= "
                  f"{after['rel_level']}; score fusion with the first stage: {fusion}.", "", _table(rows), ""]
        answers = [line for label, m in (("before training", before), ("after training", after))
                   if (line := _answers_line(label, m))]
        lines += answers + [""] if answers else []
        _plot_metrics(before, after, run_dir / "metrics.png")
        lines += ["![metrics before vs after](metrics.png)", ""]
    lines += _learning_section(run_dir, before, after)
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
