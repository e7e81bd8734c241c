"""What the user watches while a recipe runs: one line per stage with its own figures. What Ray and the libraries
print (token-authentication notices, dataset-saving and weight-loading bars, DDP notes) goes to the run folder's
`logs/` instead: `logs/<stage>.log` for a stage's processes, `logs/driver.log` for Ray's messages in this process.

Warnings a user must see (`warn`) are written to `logs/warnings.log` too, and the stage line prints them, since a
stage's own output never reaches the console.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

WARNINGS = "warnings.log"


def logs_dir(run_dir: Path) -> Path:
    path = Path(run_dir) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def output_to(path: Path):
    """Send this process's stdout and stderr to `path`, appended: file descriptors 1 and 2 (C code, and streams
    opened before) and Python's sys.stdout/sys.stderr (which a caller may have replaced)."""
    sys.stdout.flush()
    sys.stderr.flush()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = [os.dup(1), os.dup(2)]
    os.dup2(target, 1)
    os.dup2(target, 2)
    stream = os.fdopen(os.dup(target), "a", buffering=1)
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        stream.close()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


def logged(fn: Callable, path: Path) -> Callable:
    """`fn` with its output sent to `path` (a stage's log), wherever it runs."""

    def wrapped(*args):
        with output_to(path):
            return fn(*args)

    wrapped.__name__ = wrapped.__qualname__ = getattr(fn, "__name__", "stage")
    return wrapped


def ray_logs_to(path: Path) -> None:
    """Python logging in this process, Ray's included (the token-authentication notice, start-up notes), to `path`
    instead of the console. `ray.init(configure_logging=False)` empties the "ray" logger's handlers, which would
    leave its warnings to Python's last-resort console handler: Ray's records go up to the root logger instead,
    whose handler writes the file."""
    ray_logger = logging.getLogger("ray")
    ray_logger.handlers.clear()
    ray_logger.setLevel(logging.INFO)
    ray_logger.propagate = True
    root = logging.getLogger()
    if not any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


def warn(run_dir: Path, text: str) -> None:
    """A warning the user must see: kept in logs/warnings.log (the stage line prints it) and on stderr."""
    with open(logs_dir(run_dir) / WARNINGS, "a") as handle:
        handle.write(text.replace("\n", " ") + "\n")
    print(f"warning: {text}", file=sys.stderr, flush=True)


def write_progress(run_dir: Path, stage: str, text: str) -> None:
    """The stage's latest figures (one line), shown live on the stage line."""
    path = logs_dir(run_dir) / f"{stage}.progress"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_progress(run_dir: Path, stage: str) -> str:
    try:
        return (Path(run_dir) / "logs" / f"{stage}.progress").read_text().strip()
    except OSError:
        return ""


class StageLine:
    """One console line for a stage: redrawn with its progress while it runs (on a terminal), then its figures."""

    def __init__(self, run_dir: Path, name: str, stream=None):
        self.run_dir, self.name, self.stream = Path(run_dir), name, stream or _console()
        self._own = stream is None and self.stream is not sys.stdout
        self.live = self.stream.isatty()
        self.started = time.perf_counter()
        self.warnings_seen = self._warnings()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw, daemon=True) if self.live else None

    def __enter__(self):
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()
        if exc[0] is not None and self.live:
            self.stream.write("\n")
        if self._own:
            self.stream.close()
        return False

    def _warnings(self) -> list[str]:
        path = self.run_dir / "logs" / WARNINGS
        return path.read_text().splitlines() if path.exists() else []

    def _redraw(self) -> None:
        while not self._stop.wait(1.0):
            figures = read_progress(self.run_dir, self.name) or "running"
            self.stream.write(f"\r\033[K{self.name:<12}{figures}  {time.perf_counter() - self.started:.0f} s")
            self.stream.flush()

    def done(self, figures: str) -> None:
        """Print the stage's final line, and the warnings it raised."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        prefix = "\r\033[K" if self.live else ""
        lines = [f"{prefix}{self.name:<12}{figures}  ({time.perf_counter() - self.started:.0f} s)"]
        lines += [f"{'':<12}warning: {w}" for w in self._warnings()[len(self.warnings_seen):]]
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()


def _console():
    """The console as it is now, kept open for the stage line: a stage run in this process (Ray off) sends
    descriptor 1 to its log meanwhile."""
    try:
        return os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):  # a replaced stdout without a descriptor
        return sys.stdout


def stage_figures(name: str, result, run_dir: Path) -> str:
    """The few numbers that say how a stage went, from its result and its files."""
    if isinstance(result, dict) and "train_groups" in result:
        return (f"{result['train_groups']} training groups from {result['train_queries']} queries, "
                f"{result['eval_queries']} evaluation queries")
    if isinstance(result, dict) and "reranked" in result:
        metric = next((m for m in ("ndcg@10", "ndcg@5") if m in result["reranked"]), None)
        if metric:
            return (f"{metric} {result['reranked'][metric]:.4f} (first stage "
                    f"{result['first_stage'].get(metric, float('nan')):.4f})")
    if isinstance(result, dict) and "counts" in result:
        return f"{result['counts'].get('pools', 0)} pools"
    progress = read_progress(run_dir, name)
    if progress:
        return progress
    return str(result) if isinstance(result, str) else "done"


def progress_callback(run_dir: Path, stage: str, key: str):
    """A transformers TrainerCallback writing `step N/M, <key> first -> last` to the stage's progress file (main
    process only). Built on demand so importing this module stays torch-free."""
    from transformers import TrainerCallback

    from rerank_rl.rl.orchestration import is_main_process

    class Progress(TrainerCallback):
        first = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not is_main_process() or not logs or key not in logs:
                return
            self.first = logs[key] if self.first is None else self.first
            write_progress(run_dir, stage, f"step {state.global_step}/{state.max_steps}, {key} "
                                           f"{self.first:.4g} -> {logs[key]:.4g}")

    return Progress()

