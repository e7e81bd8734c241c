"""Wall time and peak memory of the main job (`rerank-rl train`, default recipe unless given).

/usr/bin/time -v reports the largest single process it reaped, but Ray starts its workers from the raylet, so this
script samples the whole job: the driver's process tree, which holds the local Ray cluster's raylet and its workers.
(Matching every new Ray process by name also counted other jobs' workers on a shared machine.) It prints
the peak of the summed RSS (which counts pages shared between processes, such as torch's libraries, once per process)
and the peak of the summed PSS (shared pages split between their users: the memory the job really holds), with the
largest processes at the PSS peak, and the peak per stage (the stage whose log was written last).

    python benchmarks/bench_main_job.py [--output-dir DIR] [-- extra train arguments]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil


def _job_processes(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


def _sample(procs: list[psutil.Process]) -> tuple[int, int, list[tuple[int, str]]]:
    rss = pss = 0
    rows = []
    for p in procs:
        try:
            info = p.memory_full_info()
            name = " ".join(p.cmdline()[:3])[:90]
        except psutil.Error:
            continue
        rss += info.rss
        pss += info.pss
        rows.append((info.pss, name))
    return rss, pss, sorted(rows, reverse=True)[:6]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("train_args", nargs="*")
    args = parser.parse_args()
    out = args.output_dir or tempfile.mkdtemp(prefix="main-job-")
    started = time.time()
    proc = psutil.Popen([sys.executable, "-m", "rerank_rl.rl.cli", "train", "--output-dir", out, *args.train_args])
    peak_rss = peak_pss = 0
    top: list[tuple[int, str]] = []
    by_stage: dict[str, int] = {}
    while proc.poll() is None:
        rss, pss, rows = _sample(_job_processes(proc))
        peak_rss = max(peak_rss, rss)
        stage = _current_stage(Path(out))
        by_stage[stage] = max(by_stage.get(stage, 0), pss)
        if pss > peak_pss:
            peak_pss, top = pss, rows
        time.sleep(1.0)
    print(f"exit code {proc.returncode}; wall {time.time() - started:.0f} s; peak summed RSS "
          f"{peak_rss / 2**30:.2f} GiB; peak summed PSS {peak_pss / 2**30:.2f} GiB; run folder {out}")
    print("largest processes at the PSS peak:")
    for pss, name in top:
        print(f"  {pss / 2**30:6.2f} GiB  {name}")
    print("peak summed PSS per stage: " + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in by_stage.items()))


def _current_stage(run_dir: Path) -> str:
    """The stage whose log in the run folder was written last (each stage logs to logs/<stage>.log)."""
    logs = list((run_dir / "logs").glob("*.log")) if (run_dir / "logs").is_dir() else []
    logs = [p for p in logs if p.stem != "driver"]
    return max(logs, key=lambda p: p.stat().st_mtime).stem if logs else "start"


if __name__ == "__main__":
    main()
