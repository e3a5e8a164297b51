"""RatingsStore: the human-evaluation database (SPEC section 10), separate from the results database.

Rebuilding results never touches ratings. DuckDB allows one writer *process* at a time, and Streamlit
sessions are threads of one server process, so every operation opens its own short-lived connection
under a process-wide lock and retries while another process holds the file. Rows are append-only
(a re-rating adds a row; readers take the latest per rater/neuron/method), so nothing is overwritten.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

T = TypeVar("T")
METHODS = ("DB", "TAB", "SUMMARY")  # the three blind descriptions of Table 3

RATINGS_TABLES: dict[str, list[tuple[str, str]]] = {
    "ratings": [
        ("rating_id", "VARCHAR"), ("rater", "VARCHAR"), ("model", "VARCHAR"), ("layer", "VARCHAR"),
        ("neuron", "INTEGER"), ("method", "VARCHAR"), ("description", "VARCHAR"), ("position", "INTEGER"),
        ("rating", "INTEGER"), ("results_run_id", "VARCHAR"), ("created_at", "TIMESTAMP"),
    ],
    "written_summaries": [
        ("summary_id", "VARCHAR"), ("rater", "VARCHAR"), ("model", "VARCHAR"), ("layer", "VARCHAR"),
        ("neuron", "INTEGER"), ("text", "VARCHAR"), ("results_run_id", "VARCHAR"), ("created_at", "TIMESTAMP"),
    ],
}
_LOCK = threading.Lock()  # one writer at a time inside this process (all Streamlit sessions)


class RatingError(ValueError):
    """A rating or written summary is invalid; the message names the field."""


class RatingsLockedError(RuntimeError):
    """Another process kept the ratings database locked for longer than the retry budget."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RatingError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


class RatingsStore:
    """Ratings and written summaries in their own DuckDB file, safe for concurrent sessions/processes."""

    def __init__(self, path: str | Path, retry_s: float = 15.0):
        self.path = Path(path)
        self.retry_s = retry_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._with_connection(self._create, read_only=False)

    @staticmethod
    def _create(con: duckdb.DuckDBPyConnection) -> None:
        for name, cols in RATINGS_TABLES.items():
            con.execute(f'CREATE TABLE IF NOT EXISTS "{name}" ({", ".join(f"{c} {t}" for c, t in cols)})')

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
                    raise RatingsLockedError(f"ratings database {self.path} stayed locked: {exc}") from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    def add_rating(self, rater: str, model: str, layer: str, neuron: int, method: str, description: str,
                   rating: int, position: int = 0, results_run_id: str = "") -> str:
        """Record one 1-5 rating of one method's description for a neuron -> rating_id (committed)."""
        rater = _check_text("rater", rater)
        if method not in METHODS:
            raise RatingError(f"method must be one of {METHODS}, got {method!r}")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise RatingError(f"rating must be an integer 1-5, got {rating!r}")
        row = [uuid.uuid4().hex, rater, model, layer, int(neuron), method, description, int(position),
               rating, results_run_id, _now()]
        self._with_connection(lambda con: con.execute(
            f"INSERT INTO ratings VALUES ({', '.join('?' * len(row))})", row), read_only=False)
        return row[0]

    def add_summary(self, rater: str, model: str, layer: str, neuron: int, text: str,
                    results_run_id: str = "") -> str:
        """Record the rater's own description of the neuron's top-K clips -> summary_id (committed)."""
        row = [uuid.uuid4().hex, _check_text("rater", rater), model, layer, int(neuron),
               _check_text("summary text", text), results_run_id, _now()]
        self._with_connection(lambda con: con.execute(
            f"INSERT INTO written_summaries VALUES ({', '.join('?' * len(row))})", row), read_only=False)
        return row[0]

    def _latest(self, table: str, keys: str, id_col: str) -> pd.DataFrame:
        sql = (f"SELECT * FROM {table} QUALIFY row_number() OVER "
               f"(PARTITION BY {keys} ORDER BY created_at DESC, {id_col}) = 1 ORDER BY created_at")
        return self._with_connection(lambda con: con.execute(sql).df(), read_only=True)

    def ratings(self, latest_only: bool = True) -> pd.DataFrame:
        """All ratings (``latest_only``: the newest per rater, neuron and method) -> DataFrame."""
        if latest_only:
            return self._latest("ratings", "rater, model, layer, neuron, method", "rating_id")
        return self._with_connection(lambda con: con.execute(
            "SELECT * FROM ratings ORDER BY created_at").df(), read_only=True)

    def summaries(self) -> pd.DataFrame:
        """The newest written summary per rater and neuron -> DataFrame."""
        return self._latest("written_summaries", "rater, model, layer, neuron", "summary_id")

    def rated_neurons(self, rater: str) -> set[tuple[str, str, int]]:
        """{(model, layer, neuron)} this rater has rated at least once."""
        df = self._with_connection(lambda con: con.execute(
            "SELECT DISTINCT model, layer, neuron FROM ratings WHERE rater = ?", [rater]).df(), read_only=True)
        return {(r.model, r.layer, int(r.neuron)) for r in df.itertuples()}
