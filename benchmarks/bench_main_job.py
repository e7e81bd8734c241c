"""Wall time and peak memory of the main job (`rerank-rl train`, default recipe unless given).

/usr/bin/time -v only sees the driver and its direct children, but Ray starts its workers from the raylet, so this
script samples the summed RSS of the driver's process tree plus every Ray process that appears while it runs.

    python benchmarks/bench_main_job.py [--output-dir DIR] [-- extra train arguments]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import psutil


def _job_processes(root: psutil.Process, baseline: set[int]) -> list[psutil.Process]:
    procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.pid not in baseline and ("ray" in cmd or "rerank_rl" in cmd):
            procs[p.pid] = p
    return list(procs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("train_args", nargs="*")
    args = parser.parse_args()
    out = args.output_dir or tempfile.mkdtemp(prefix="main-job-")
    baseline = {p.pid for p in psutil.process_iter()}
    started = time.time()
    proc = psutil.Popen([sys.executable, "-m", "rerank_rl.rl.cli", "train", "--output-dir", out, *args.train_args])
    peak = 0
    while proc.poll() is None:
        total = 0
        for p in _job_processes(proc, baseline):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, total)
        time.sleep(0.5)
    print(f"exit code {proc.returncode}; wall {time.time() - started:.0f} s; "
          f"peak summed RSS {peak / 2**30:.2f} GiB; run folder {out}")


if __name__ == "__main__":
    main()
