"""A DuckDB file shared by processes: open with retries while another process holds it, release when idle.

DuckDB lets one process write a file and no other process open it meanwhile (readers included); readers
of several processes may share it. So a writer (the build) holds its connection only while it uses it:
``idle_s`` after its last use the connection is closed, and a step that computes for minutes leaves the
file to the app. Both sides wait while the other holds the file (jittered backoff, up to ``wait_s``), so
a build never fails because the app is open, and a page opened during a commit waits for it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


class StoreError(RuntimeError):
    """The results database is missing, locked or does not hold what was asked for."""


class StoreLockedError(StoreError):
    """Another process held the database for longer than the store was told to wait."""


def is_lock_error(exc: BaseException) -> bool:
    """Whether a DuckDB error means another process holds the file."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class SharedConnection:
    """The connection of one store: opened on first use, reopened after an idle release, one user at a time."""

    def __init__(self, path: Path, read_only: bool, wait_s: float = 0.0, idle_s: float | None = None,
                 on_wait: Callable[[str], None] | None = None):
        self.path, self.read_only, self.wait_s, self.idle_s, self.on_wait = path, read_only, wait_s, idle_s, on_wait
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.RLock()
        self._last = 0.0
        self._timer: threading.Timer | None = None
        self._closed = False
        self.opened = 0  # how many times the file was opened (tests, diagnostics)

    @contextmanager
    def use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The open connection, held by the caller's thread for the block (a transaction fits inside)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"the store of {self.path} is closed")
            if self._con is None:
                self._con = self._open()
            try:
                yield self._con
            finally:
                self._last = time.monotonic()
                self._arm()

    def _open(self) -> duckdb.DuckDBPyConnection:
        start, delay, told = time.monotonic(), 0.05, False
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=self.read_only)
                self.opened += 1
                return con
            except duckdb.IOException as exc:
                waited = time.monotonic() - start
                if not is_lock_error(exc):
                    raise StoreError(f"cannot open {self.path}: {exc}") from exc
                if waited >= self.wait_s:
                    raise StoreLockedError(f"cannot open {self.path}: another process held it "
                                           f"{waited:.0f} s: {exc}") from exc
                if not told and waited >= 2.0 and self.on_wait is not None:
                    self.on_wait(f"waiting for another process to release {self.path.name} (up to "
                                 f"{self.wait_s:.0f} s): {str(exc).splitlines()[0]}")
                    told = True
                time.sleep(min(delay * (1 + random.random()), max(0.0, self.wait_s - waited)))
                delay = min(delay * 2, 1.0)

    def _arm(self, delay: float | None = None) -> None:
        if self.idle_s is None or self._timer is not None or self._con is None:
            return
        self._timer = threading.Timer(self.idle_s if delay is None else delay, self._idle)
        self._timer.daemon = True
        self._timer.start()

    def _idle(self) -> None:
        with self._lock:
            self._timer = None
            if self._con is None:
                return
            idle = time.monotonic() - self._last
            if idle >= self.idle_s:
                self.release()
            else:
                self._arm(self.idle_s - idle)

    def release(self) -> None:
        """Close the file now (the next use reopens it): other processes may open it meanwhile."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def close(self) -> None:
        with self._lock:
            self.release()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._closed = True
