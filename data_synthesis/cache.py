"""Disk cache of teacher replies, keyed by (teacher identity, prompt messages, sampling parameters).

One SQLite file: safe across processes, atomic per write, and a killed run keeps every reply written so far, so
re-running a synthesis resumes where it stopped. Only successful replies are stored (also those the parser later
rejects, so a re-run replays them instead of paying again); transport failures are not, so a re-run retries them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path


def request_key(identity: str, messages: list[dict], params: dict) -> str:
    payload = json.dumps([identity, messages, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class ReplyCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                         "identity TEXT, created REAL)")
        self._db.commit()

    def get_many(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, text FROM replies WHERE key IN ({marks})", chunk)
                found.update(rows.fetchall())
        return found

    def put_many(self, items: list[tuple[str, str]], identity: str = "") -> None:
        if not items:
            return
        now = time.time()
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                                 [(k, t, identity, now) for k, t in items])
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
