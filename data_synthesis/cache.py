"""Disk caches of the synthesis stage: teacher replies, keyed by (teacher identity, prompt messages, sampling
parameters), and encoder embeddings, keyed by (encoder, sequence length, text).

Each is one SQLite file: safe across processes, atomic per write, and a killed run keeps every entry written so
far, so re-running a synthesis resumes where it stopped. Only successful replies are stored (also those the parser
later rejects, so a re-run replays them instead of paying again); transport failures are not, so a re-run retries.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np


def request_key(identity: str, messages: list[dict], params: dict) -> str:
    payload = json.dumps([identity, messages, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class _SQLiteStore:
    """One table `key -> value` in a SQLite file, shared by threads of one process and by processes."""

    TABLE = ""
    SCHEMA = ""  # the columns after `key TEXT PRIMARY KEY`; the first one holds the value

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} (key TEXT PRIMARY KEY, {self.SCHEMA})")
        self._db.commit()

    def _get_many(self, keys: list[str], column: str) -> dict:
        found: dict = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, {column} FROM {self.TABLE} WHERE key IN ({marks})", chunk)
                found.update(rows.fetchall())
        return found

    def _put_many(self, rows: list[tuple]) -> None:
        if not rows:
            return
        marks = ",".join("?" * len(rows[0]))
        with self._lock:
            self._db.executemany(f"INSERT OR REPLACE INTO {self.TABLE} VALUES ({marks})", rows)
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {self.TABLE}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ReplyCache(_SQLiteStore):
    TABLE = "replies"
    SCHEMA = "text TEXT NOT NULL, identity TEXT, created REAL"

    def get_many(self, keys: list[str]) -> dict[str, str]:
        return self._get_many(keys, "text")

    def put_many(self, items: list[tuple[str, str]], identity: str = "") -> None:
        now = time.time()
        self._put_many([(k, t, identity, now) for k, t in items])


class EmbeddingCache(_SQLiteStore):
    """float32 vectors by key (see `request_key`); a re-run encodes only texts it has not seen."""

    TABLE = "embeddings"
    SCHEMA = "vector BLOB NOT NULL, created REAL"

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        return {k: np.frombuffer(v, dtype=np.float32) for k, v in self._get_many(keys, "vector").items()}

    def put_many(self, items: list[tuple[str, np.ndarray]]) -> None:
        now = time.time()
        self._put_many([(k, np.asarray(v, dtype=np.float32).tobytes(), now) for k, v in items])
