"""Responses of served models, kept by request so an interrupted run resumes without re-sending them.

One SQLite file maps the SHA-256 of a request's canonical JSON (never the server address or the API key)
to the response; each answer is committed as it arrives, and a row that does not read back is absent.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.atomic import ensure_folder
from modality_conflict.models.errors import ModelArgumentError


def request_key(body: Mapping[str, Any]) -> str:
    """The cache key of a request body: SHA-256 of its canonical JSON."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A thread-safe persistent map from request keys to response JSON objects (the SQLite file is
    created with its folder)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        ensure_folder(self.path.parent)
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT)")
        except sqlite3.Error as error:
            raise ModelArgumentError(f"response cache {self.path}: {error}") from None
        self._lock = threading.Lock()
        self.hits = 0
        """Lookups answered from the file."""

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            return None
        if not isinstance(value, dict):
            return None
        with self._lock:
            self.hits += 1
        return value

    def put(self, key: str, response: Mapping[str, Any]) -> None:
        text = json.dumps(response, separators=(",", ":"))
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, response) VALUES (?, ?)", (key, text))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
