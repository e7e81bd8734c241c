"""Running the real command line from tests. A plain module (not conftest) so any test file can import it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `rerank-rl ARGS` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "rerank_rl.rl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
