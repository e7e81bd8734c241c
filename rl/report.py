"""A short markdown report of a run, with PNG plots: reward components per RL step, metrics before vs after."""

from __future__ import annotations

import json
from pathlib import Path

from rerank_rl.rl.paradigms import get_paradigm


def _log_history(stage_dir: Path) -> list[dict]:
    path = stage_dir / "trainer_state.json"
    return json.loads(path.read_text()).get("log_history", []) if path.exists() else []


def _plot_rewards(history: list[dict], out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in history for k in row if k.startswith(("reward_components/", "reward")) and
                   not k.endswith("_std") and "/std" not in k})
    if not keys:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        points = [(row["step"], row[key]) for row in history if key in row]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key.replace("reward_components/", ""))
    ax.set_xlabel("RL step")
    ax.set_ylabel("mean over the step's completions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def _plot_metrics(before: dict, after: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


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
    history = _log_history(run_dir / "rl")
    if history and _plot_rewards(history, run_dir / "rewards.png"):
        filtered = sum(row.get("zero_variance_groups", 0) for row in history)
        lines += ["## RL rewards per step", "", f"Zero-variance groups filtered out of the loss: {filtered:.0f}.", "",
                  "![reward components](rewards.png)", ""]
    sft = [row["loss"] for row in _log_history(run_dir / "sft") if "loss" in row]
    if sft:
        lines += [f"SFT loss: {sft[0]:.3f} (first step) -> {sft[-1]:.3f} (last step).", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
