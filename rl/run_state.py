"""Run state shared by every recipe (rerankers and the classifier): which stages finished, which one was running,
and the one stage helper that skips finished stages and resumes an interrupted one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


class RunState:
    """run_dir/state.json: {"done": {stage: result}, "current": stage being run}."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"done": {}}

    def done(self, stage: str) -> bool:
        return stage in self.data["done"]

    def finish(self, stage: str, result) -> None:
        self.data["done"][stage] = result
        self.data.pop("current", None)
        self._write()

    def start(self, stage: str) -> None:
        self.data["current"] = stage
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        tmp.replace(self.path)  # atomic: a kill never leaves a torn state file

    def stage(self, name: str, fn: Callable[..., object], *args, resume: bool = False):
        """Run stage `name` as `fn(interrupted, *args)` unless it finished before (then its recorded result).
        `interrupted` is true when resuming a run that was killed inside this very stage: a training stage then
        continues from its last checkpoint."""
        if self.done(name):
            return self.data["done"][name]
        interrupted = resume and self.data.get("current") == name
        self.start(name)
        result = fn(interrupted, *args)
        self.finish(name, result)
        return result
