"""CI end to end on the real MiniLM and the shared data, for the uni-encoder: `rerank-rl train
configs/gliclass_tiny.yaml` with the uni-encoder's settings runs baseline, supervised training, PPO, evaluation and
export; the export reloads through gliclass's own pipeline with the same predictions; `rerank-rl evaluate
--paradigm classifier` scores it. test_biencoder_run.py does the same for the bi-encoder (the recipe's default)."""

import json

import numpy as np
import pytest

from rerank_rl.rl.cli import main
from rerank_rl.rl.config import CONFIG_DIR, load_recipe

# The tiny recipe is the bi-encoder's; these settings make it the uni-encoder's as it was before.
UNI_ENCODER = [arg for key in ("model.architecture=uni_encoder", "model.text_tower=shared", "model.max_length=64",
                               "model.logit_scale=10.0", "supervised.loss=bce", "supervised.lr=1e-4")
               for arg in ("--set", key)]


@pytest.fixture(scope="module")
def tiny_run(shared_data, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("gliclass-run")
    # Open-vocabulary distillation on, with unlabeled DL19 passages: its wiring runs too.
    overrides = ["--set", f"data.root={shared_data}", "--set", "data.vocab_labels=2", "--set", "data.vocab_max_df=0.5",
                 "--set", "data.unlabeled=[trec_dl:dl19]", *UNI_ENCODER]
    assert main(["train", str(CONFIG_DIR / "gliclass_tiny.yaml"), "--output-dir", str(run_dir), *overrides]) == 0
    return run_dir


def test_run_writes_metrics_for_every_model(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for model in ("baseline", "supervised", "ppo"):
        for name in ("ag_news:test", "yin2019_emotion:test"):
            result = metrics[model][name]
            assert 0 <= result["macro_f1"] <= 1 and result["examples"] == 12
    # emotion_dair is held out whole (validation only), so none of yin2019's emotions is trained on: its macro-F1
    # over unseen labels would be its macro-F1 again, and is left out.
    assert not {"joy", "sadness", "anger"} & set(metrics["seen_labels"])
    assert "macro_f1_unseen" not in metrics["ppo"]["yin2019_emotion:test"]
    assert metrics["ppo_training"]["steps"] == 2 and (tiny_run / "report.md").exists()
    assert metrics["supervised_training"]["open_vocabulary"] > 10
    for stage in ("supervised", "ppo"):
        assert (tiny_run / stage / "log.jsonl").exists() and list((tiny_run / stage / "tensorboard").iterdir())
    log = [json.loads(line) for line in (tiny_run / "ppo" / "log.jsonl").read_text().splitlines()]
    assert {"reward", "kl", "entropy", "clip_frac"} <= set(log[1])
    # The held-out-label figure every PPO step (validate_every 1), beside the reward and the base encoder's figure.
    assert [row["step"] for row in log if "heldout_macro_f1" in row] == [0, 1, 2]
    assert all("heldout_base" in row for row in log if "heldout_macro_f1" in row)


def test_heldout_labels_are_measured_and_choose_the_checkpoint(tiny_run, heldout_of_run, heldout_score):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    groups, tests = heldout_of_run(CONFIG_DIR / "gliclass_tiny.yaml", UNI_ENCODER[1::2])
    held = set(metrics["heldout_labels"])
    assert held and not held & {label.casefold() for label in metrics["seen_labels"]}  # never trained on
    assert any(name.startswith("trec_dl_queries:dl21#") for name in metrics["heldout_groups"])
    base = metrics["supervised_training"]["heldout"]["base_encoder"]
    for stage, evaluated in (("supervised_training", "supervised"), ("ppo_training", "ppo")):
        choice = metrics[stage]["heldout"]
        figures = [h["macro_f1"] for h in choice["history"]]
        assert choice["macro_f1"] == max(figures) and choice["base_encoder"] == base
        assert figures.index(max(figures)) == [h["step"] for h in choice["history"]].index(choice["chosen_step"])
        # Each later validation says how sure its gain over the stage's start is (paired bootstrap of the texts).
        assert all(0.0 <= h["p_better_than_start"] <= 1.0 for h in choice["history"][1:])
        # The stage's model is the chosen checkpoint: scored afresh it gives the figure it was chosen for; its
        # reported figure is on the held-out labels' other texts.
        final = tiny_run / evaluated / "final"
        assert heldout_score(final, groups, 64) == pytest.approx(choice["macro_f1"], abs=1e-6)
        assert metrics[evaluated]["held-out labels"]["macro_f1"] == pytest.approx(heldout_score(final, tests, 64),
                                                                                  abs=1e-6)
    # PPO starts from the supervised choice and may only keep it or better it.
    assert metrics["ppo_training"]["heldout"]["macro_f1"] >= metrics["supervised_training"]["heldout"]["macro_f1"]
    assert metrics["supervised_training"]["distinct_labels"]["with_target"] > 30
    # Four tiny steps cannot reach MiniLM's own similarity: the run says so, in metrics.json and report.md.
    assert metrics["heldout_verdict"].startswith("WARNING held-out labels")
    assert metrics["heldout_verdict"] in (tiny_run / "report.md").read_text()


def test_heldout_verdict_compares_the_final_stage_with_the_base():
    from rerank_rl.rl.paradigms.classifier.pipeline import heldout_verdict

    above = {"macro_f1": 0.8, "base_encoder": 0.75}
    below = {"macro_f1": 0.6, "base_encoder": 0.75}
    assert heldout_verdict({}) == ""
    # Without test texts, the choice's own figure, flagged as chosen on those texts.
    assert "validation texts it was chosen on" in heldout_verdict({"supervised_training": {"heldout": above}})
    assert "+5.0 points" in heldout_verdict({"supervised_training": {"heldout": above}})
    # PPO's choice is the final model when PPO ran.
    assert "15.0 points BELOW" in heldout_verdict({"supervised_training": {"heldout": above},
                                                   "ppo_training": {"heldout": below}})
    # With test texts, the final evaluation on them decides, whatever the validation figure said.
    tested = {"supervised_training": {"heldout": above}, "baseline": {"held-out labels": {"macro_f1": 0.7}},
              "supervised": {"held-out labels": {"macro_f1": 0.65}}}
    assert heldout_verdict(tested).startswith("WARNING held-out labels: the final model (0.650) is 5.0 points")


def test_export_reloads_in_gliclass_with_same_predictions(tiny_run, shared_data):
    from gliclass import GLiClassModel, ZeroShotClassificationPipeline
    from transformers import AutoTokenizer

    from rerank_rl.data_synthesis.classification import read_named, sample
    from rerank_rl.rl.paradigms.classifier.evaluate import predict_probs
    from rerank_rl.rl.paradigms.classifier.model import load_model

    export = tiny_run / "export"
    rows = sample(read_named("ag_news:test", shared_data), 10, seed=5)
    texts, labels = [r["text"] for r in rows], rows[0]["label_names"]
    ours = predict_probs(*load_model(tiny_run / "ppo" / "final"), texts, labels, max_length=64)
    # Served exactly as a gliclass user would, from the folder alone.
    pipe = ZeroShotClassificationPipeline(GLiClassModel.from_pretrained(str(export)),
                                          AutoTokenizer.from_pretrained(str(export)), max_length=64,
                                          classification_type="multi-label", device="cpu", progress_bar=False)
    served = pipe(texts, labels, threshold=0.0, batch_size=4)
    scores = np.array([[{p["label"]: p["score"] for p in row}[label] for label in labels] for row in served])
    np.testing.assert_allclose(scores, ours, atol=1e-5)
    single = ZeroShotClassificationPipeline(pipe.pipe.model, pipe.pipe.tokenizer, max_length=64,
                                            classification_type="single-label", device="cpu", progress_bar=False)
    picked = [row[0]["label"] for row in single(texts, labels, batch_size=3)]
    assert picked == [labels[i] for i in ours.argmax(1)]


def test_resume_skips_finished_stages(tiny_run):
    from rerank_rl.rl.paradigms.classifier.pipeline import run_recipe

    config = load_recipe(tiny_run / "config.yaml")
    before = json.loads((tiny_run / "metrics.json").read_text())
    again = run_recipe(config, tiny_run, resume=True, log=lambda _: None)
    assert again["ppo"] == before["ppo"] and again["supervised"] == before["supervised"]


def test_evaluate_command(tiny_run, shared_data, capsys):
    data = shared_data / "ag_news" / "test.csv"
    code = main(["evaluate", "--paradigm", "classifier", "--model", str(tiny_run / "export"), "--data", str(data),
                 "--labels", "World,Sports,Business,Sci/Tech", "--max-queries", "8", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["examples"] == 8 and {"macro_f1", "micro_f1", "accuracy"} <= set(result)
    code = main(["evaluate", "--paradigm", "classifier", "--model", str(tiny_run / "export"), "--data", str(data),
                 "--labels", "World,Sports"])
    assert code == 2 and "not among the given labels" in capsys.readouterr().err


def test_empty_open_vocabulary_is_a_clear_error(shared_data, tmp_path, capsys):
    args = ["train", str(CONFIG_DIR / "gliclass_tiny.yaml"), "--output-dir", str(tmp_path), "--set",
            f"data.root={shared_data}", "--set", "data.vocab_labels=2", "--set", "data.vocab_min_df=1000",
            "--set", "evaluate.embedding_baseline=false"]
    assert main(args) != 0
    assert "open vocabulary is empty" in capsys.readouterr().err
