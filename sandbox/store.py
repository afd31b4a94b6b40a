"""One SQLite file holding every sandbox service's tables.

The real services keep their state in SQLite too; one file per sandbox run means a restart with
the same `--state` file finds every agent, balance, bet and escrow where it left them. Money is
stored as INTEGER micro-USD. One connection guarded by one re-entrant lock keeps the store safe
across uvicorn's event loop and the threads of tests that peek into it; a transaction is a
`with store.tx():` block, and nested blocks join the outer one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

Params = Sequence[Any] | dict[str, Any]

_FRAMEWORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_sequences (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class Store:
    """A thread-safe SQLite database (WAL mode) shared by the sandbox services."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_FRAMEWORK_SCHEMA)
        self._schemas: set[str] = set()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """An atomic block: everything inside commits together or not at all."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                self._depth -= 1
                if outer:
                    self._conn.execute("COMMIT")

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Create a service's tables once per process (`CREATE TABLE IF NOT EXISTS` DDL)."""
        with self._lock:
            if name in self._schemas:
                return
            self._conn.executescript(ddl)
            self._schemas.add(name)

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self.tx() as conn:
            return conn.execute(sql, params)

    def all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Params = (), default: Any = None) -> Any:
        row = self.one(sql, params)
        return default if row is None or row[0] is None else row[0]

    def next_seq(self, name: str) -> int:
        """The next value (1, 2, …) of a named counter that survives restarts."""
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO sandbox_sequences(name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (name,),
            )
            return int(conn.execute("SELECT value FROM sandbox_sequences WHERE name = ?", (name,)).fetchone()[0])

    def meta(self, key: str, default: str | None = None) -> str | None:
        value = self.scalar("SELECT value FROM sandbox_meta WHERE key = ?", (key,))
        return default if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO sandbox_meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
