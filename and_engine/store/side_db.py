"""SideDatabase: a small DuckDB file the app writes beside the read-only results database (ratings, live answers).

DuckDB allows one writer *process* at a time, and Streamlit sessions are threads of one server process, so
every operation opens its own short-lived connection under a process-wide lock and retries with jittered
backoff while another process holds the file; past ``retry_s`` it raises ``locked_error``. Tables are
created (and columns added to older files) from a ``{table: [(column, type), ...]}`` declaration.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb

T = TypeVar("T")
_LOCK = threading.Lock()  # one connection at a time inside this process (all Streamlit sessions)


class SideDatabaseLockedError(RuntimeError):
    """Another process kept a side database locked for longer than the retry budget."""


class SideDatabase:
    """The connection discipline of a side database; subclasses declare ``TABLES`` and their operations."""

    RETRY_S = 15.0  # how long a call waits for another process's lock before ``locked_error``
    TABLES: dict[str, list[tuple[str, str]]] = {}
    KIND = "side"  # the database's name in error messages
    locked_error: type[Exception] = SideDatabaseLockedError

    def __init__(self, path: str | Path, retry_s: float | None = None):
        self.path = Path(path)
        self.retry_s = self.RETRY_S if retry_s is None else retry_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._with_connection(self._create, read_only=False)

    def _create(self, con: duckdb.DuckDBPyConnection) -> None:
        for name, cols in self.TABLES.items():
            con.execute(f'CREATE TABLE IF NOT EXISTS "{name}" ({", ".join(f"{c} {t}" for c, t in cols)})')
            for col, typ in cols:  # a database written before a column existed gets it (NULL in old rows)
                con.execute(f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS {col} {typ}')

    def _with_connection(self, fn: Callable[[duckdb.DuckDBPyConnection], T], read_only: bool) -> T:
        """Open a connection, run ``fn``, close; retry with jittered backoff while the file is locked."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.02
        while True:
            try:
                with _LOCK:
                    con = duckdb.connect(str(self.path), read_only=read_only and self.path.exists())
                    try:
                        return fn(con)
                    finally:
                        con.close()
            except (duckdb.IOException, duckdb.TransactionException) as exc:
                if time.monotonic() > deadline:
                    raise self.locked_error(f"{self.KIND} database {self.path} stayed locked: {exc}") from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
