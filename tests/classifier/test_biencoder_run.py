"""CI end to end for the bi-encoder (configs/gliclass_tiny.yaml as committed) on the real MiniLM and the shared
data: its step 0 is the base encoder's held-out figure, checkpoint choice follows the held-out metric in both
stages, PPO reports it per step, and the export reloads in sentence-transformers and in `rerank-rl evaluate`."""

import json

import numpy as np
import pytest

from rerank_rl.rl.cli import main
from rerank_rl.rl.config import CONFIG_DIR


@pytest.fixture(scope="module")
def bi_run(shared_data, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("gliclass-bi-run")
    assert main(["train", str(CONFIG_DIR / "gliclass_tiny.yaml"), "--output-dir", str(run_dir),
                 "--set", f"data.root={shared_data}"]) == 0
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_step0_is_the_base_encoder_and_choice_follows_the_heldout_metric(bi_run, heldout_of_run, heldout_score):
    run_dir, metrics = bi_run
    groups, tests = heldout_of_run(CONFIG_DIR / "gliclass_tiny.yaml", [])
    base = {"macro_f1": metrics["supervised_training"]["heldout"]["base_encoder"]}
    for stage, evaluated in (("supervised_training", "supervised"), ("ppo_training", "ppo")):
        choice = metrics[stage]["heldout"]
        history = choice["history"]
        figures = [h["macro_f1"] for h in history]
        assert history[0]["step"] == 0 and choice["base_encoder"] == base["macro_f1"]
        # The chosen step is the first best figure, and the stage's model, evaluated afresh, gives that figure.
        assert choice["chosen_step"] == history[figures.index(max(figures))]["step"]
        assert choice.get("chosen_interpolation") == history[figures.index(max(figures))].get("interpolation")
        assert heldout_score(run_dir / stage.removesuffix("_training") / "final", groups) == pytest.approx(
            max(figures), abs=1e-6)
        # The figure reported for it is on the held-out labels' other texts, which the choice never saw.
        assert metrics[evaluated]["held-out labels"]["macro_f1"] == pytest.approx(
            heldout_score(run_dir / stage.removesuffix("_training") / "final", tests), abs=1e-6)
    mixes = [h for h in metrics["supervised_training"]["heldout"]["history"] if "interpolation" in h]
    assert [(h["step"], h["interpolation"]) for h in mixes] == [(4, 0.5)]  # the recipe's WiSE-FT mix was validated
    # Step 0 of supervised training is the untrained bi-encoder: the base encoder's figure, set by set.
    start = metrics["supervised_training"]["heldout"]["history"][0]
    assert start["macro_f1"] == pytest.approx(base["macro_f1"], abs=5e-4)
    # So the final model can only tie or beat the base on the validation texts; on the test texts it may not, and
    # the verdict reports those.
    assert metrics["ppo_training"]["heldout"]["macro_f1"] >= base["macro_f1"] - 5e-4
    final, test_base = metrics["ppo"]["held-out labels"]["macro_f1"], metrics["baseline"]["held-out labels"]["macro_f1"]
    assert f"({final:.3f})" in metrics["heldout_verdict"] and f"({test_base:.3f})" in metrics["heldout_verdict"]
    assert metrics["heldout_verdict"].startswith("Held-out labels" if final >= test_base else "WARNING")


def test_ppo_runs_on_the_bi_encoder_and_logs_the_heldout_figure(bi_run):
    run_dir, metrics = bi_run
    log = [json.loads(line) for line in (run_dir / "ppo" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log if "heldout_macro_f1" in row] == [0, 1, 2]
    assert {"reward", "kl", "clip_frac"} <= set(metrics["ppo_training"]) | {k.removesuffix("_first") for k in
                                                                            metrics["ppo_training"]}
    assert np.isfinite(metrics["ppo_training"]["kl_last"])


def test_bi_encoder_export_reloads_in_sentence_transformers_and_the_cli(bi_run, shared_data, capsys):
    from rerank_rl.data_synthesis.classification import read_named, sample
    from rerank_rl.rl.paradigms.classifier.evaluate import predict_logits
    from rerank_rl.rl.paradigms.classifier.export import read_bundle, sentence_transformer_logits
    from rerank_rl.rl.paradigms.classifier.model import load_model

    run_dir, _ = bi_run
    export = run_dir / "export"
    assert read_bundle(export)["architecture"] == "bi-encoder" and read_bundle(export)["max_length"] == 256
    rows = sample(read_named("ag_news:test", shared_data), 10, seed=5)
    texts, labels = [r["text"] for r in rows], rows[0]["label_names"]
    ours = predict_logits(*load_model(run_dir / "ppo" / "final"), texts, labels, max_length=256)
    np.testing.assert_allclose(sentence_transformer_logits(export, texts, labels), ours, atol=1e-3)
    data = shared_data / "ag_news" / "test.csv"
    assert main(["evaluate", "--paradigm", "classifier", "--model", str(export), "--data", str(data),
                 "--labels", "World,Sports,Business,Sci/Tech", "--max-queries", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["examples"] == 8 and 0 <= result["macro_f1"] <= 1
