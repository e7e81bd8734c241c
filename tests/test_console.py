"""The console a user watches: one line per stage, the libraries' output in the run folder's logs."""

from __future__ import annotations

import io
import os

from rerank_rl.rl.console import StageLine, logged, stage_figures, warn, write_progress


def test_a_stage_output_goes_to_its_log_down_to_the_file_descriptors(tmp_path, capfd):
    def stage(x):
        print("from python")
        os.write(2, b"from C or tqdm\n")
        return x + 1

    assert logged(stage, tmp_path / "s.log")(1) == 2
    print("console again")
    out, err = capfd.readouterr()
    assert out == "console again\n" and err == ""
    assert (tmp_path / "s.log").read_text() == "from python\nfrom C or tqdm\n"


def test_one_line_per_stage_with_its_figures_and_warnings(tmp_path):
    stream = io.StringIO()  # not a terminal: no redrawing, just the final line
    with StageLine(tmp_path, "sft", stream) as line:
        write_progress(tmp_path, "sft", "step 24/24, loss 0.62 -> 0.11")
        warn(tmp_path, "sft.max_length=64 cuts the answer of 2 of 3 SFT examples")
        line.done(stage_figures("sft", "/run/sft/merged", tmp_path))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("sft         step 24/24, loss 0.62 -> 0.11  (")
    assert lines[1].strip() == "warning: sft.max_length=64 cuts the answer of 2 of 3 SFT examples"
    data = {"train_groups": 40, "train_queries": 20, "eval_queries": 3}
    assert stage_figures("data", data, tmp_path) == "40 training groups from 20 queries, 3 evaluation queries"
    metrics = {"reranked": {"ndcg@10": 0.5}, "first_stage": {"ndcg@10": 0.25}}
    assert stage_figures("eval_after", metrics, tmp_path) == "ndcg@10 0.5000 (first stage 0.2500)"


def test_a_lone_ray_train_worker_trains_without_a_process_group(tmp_path, monkeypatch):
    """One worker needs no DistributedDataParallel: accelerate wraps the model in it whenever LOCAL_RANK is set."""
    import torch.distributed as dist

    from rerank_rl.rl.orchestration import _single_process

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        seen = _single_process(lambda: (dist.is_initialized(), os.environ.get("LOCAL_RANK")))()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert seen == (False, None)
