"""RatingsStore: the human-evaluation database (SPEC section 10), separate from the results database.

Rebuilding results never touches ratings. DuckDB allows one writer *process* at a time, and Streamlit
sessions are threads of one server process, so every operation opens its own short-lived connection
under a process-wide lock and retries while another process holds the file. Rows are append-only
(a re-rating adds a row; readers take the latest per rater/neuron/method), so nothing is overwritten.

A submission (the ratings of one neuron's descriptions + the rater's written summary) is one transaction,
retried as a whole, or nothing (``add_submission``). Each rating names the results step that produced
the rated description (``description_step_id``); ``bound_to`` keeps the ratings of descriptions a
results database still holds, so a rebuild that changes a description re-opens that neuron for rating.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
        ("submission_id", "VARCHAR"), ("description_step_id", "VARCHAR"),
    ],
    "written_summaries": [
        ("summary_id", "VARCHAR"), ("rater", "VARCHAR"), ("model", "VARCHAR"), ("layer", "VARCHAR"),
        ("neuron", "INTEGER"), ("text", "VARCHAR"), ("results_run_id", "VARCHAR"), ("created_at", "TIMESTAMP"),
        ("submission_id", "VARCHAR"),
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


@dataclass(frozen=True)
class RatedDescription:
    """One rated description of a submission: the method, its text, the 1-5 rating, its blind position and
    the results step that produced the text."""

    method: str
    description: str
    rating: int
    position: int = 0
    step_id: str = ""


def _check_rating(r: RatedDescription) -> None:
    if r.method not in METHODS:
        raise RatingError(f"method must be one of {METHODS}, got {r.method!r}")
    if isinstance(r.rating, bool) or not isinstance(r.rating, int) or not 1 <= r.rating <= 5:
        raise RatingError(f"rating must be an integer 1-5, got {r.rating!r}")


def bound_to(ratings: pd.DataFrame, current_steps: set[str] | None) -> pd.Series:
    """Which rating rows rate a description the results database still holds: their
    ``description_step_id`` is one of ``current_steps`` (all rows when ``current_steps`` is None)."""
    if current_steps is None:
        return pd.Series(True, index=ratings.index)
    return ratings["description_step_id"].isin(current_steps)


class RatingsStore:
    """Ratings and written summaries in their own DuckDB file, safe for concurrent sessions/processes."""

    RETRY_S = 15.0  # how long a call waits for another process's lock before RatingsLockedError

    def __init__(self, path: str | Path, retry_s: float | None = None):
        self.path = Path(path)
        self.retry_s = self.RETRY_S if retry_s is None else retry_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._with_connection(self._create, read_only=False)

    @staticmethod
    def _create(con: duckdb.DuckDBPyConnection) -> None:
        for name, cols in RATINGS_TABLES.items():
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
                    raise RatingsLockedError(f"ratings database {self.path} stayed locked: {exc}") from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    def _insert_all(self, rows: dict[str, list[list]]) -> None:
        """Insert ``{table: [row, ...]}`` in one transaction, retried as a whole while locked, or nothing."""
        def write(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, table_rows in rows.items():
                    cols = [c for c, _ in RATINGS_TABLES[table]]
                    sql = f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
                    for row in table_rows:
                        con.execute(sql, row)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

        self._with_connection(write, read_only=False)

    def add_submission(self, rater: str, model: str, layer: str, neuron: int, rated: list[RatedDescription],
                       text: str = "", results_run_id: str = "") -> str:
        """Record one neuron's ratings and (if ``text`` is not blank) the rater's written summary, all in one
        transaction -> submission_id. Every value is checked before anything is written."""
        rater = _check_text("rater", rater)
        if not rated:
            raise RatingError("a submission needs at least one rating")
        for r in rated:
            _check_rating(r)
        methods = [r.method for r in rated]
        if len(set(methods)) != len(methods):
            raise RatingError(f"each method is rated once per submission, got {methods}")
        sid, now = uuid.uuid4().hex, _now()
        rows: dict[str, list[list]] = {"ratings": [
            [uuid.uuid4().hex, rater, model, layer, int(neuron), r.method, r.description, int(r.position), r.rating,
             results_run_id, now, sid, r.step_id] for r in rated]}
        if text.strip():
            rows["written_summaries"] = [[uuid.uuid4().hex, rater, model, layer, int(neuron), text.strip(),
                                          results_run_id, now, sid]]
        self._insert_all(rows)
        return sid

    def add_rating(self, rater: str, model: str, layer: str, neuron: int, method: str, description: str,
                   rating: int, position: int = 0, results_run_id: str = "", description_step_id: str = "") -> str:
        """Record one 1-5 rating of one method's description for a neuron (a submission of its own) -> its id."""
        return self.add_submission(rater, model, layer, neuron,
                                   [RatedDescription(method, description, rating, position, description_step_id)],
                                   results_run_id=results_run_id)

    def add_summary(self, rater: str, model: str, layer: str, neuron: int, text: str,
                    results_run_id: str = "") -> str:
        """Record the rater's own description of the neuron's top-K clips -> summary_id (committed)."""
        row = [uuid.uuid4().hex, _check_text("rater", rater), model, layer, int(neuron),
               _check_text("summary text", text), results_run_id, _now(), uuid.uuid4().hex]
        self._insert_all({"written_summaries": [row]})
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

    def rated_neurons(self, rater: str, current_steps: set[str] | None = None) -> set[tuple[str, str, int]]:
        """{(model, layer, neuron)} this rater has rated; with ``current_steps`` (the step ids of the descriptions
        the results database holds) only neurons with a submission whose every rating is ``bound_to`` them."""
        df = self._with_connection(lambda con: con.execute(
            "SELECT model, layer, neuron, submission_id, rating_id, description_step_id FROM ratings WHERE rater = ?",
            [rater]).df(), read_only=True)
        df = df.assign(bound=bound_to(df, current_steps), submission=df["submission_id"].fillna(df["rating_id"]))
        done = df.groupby(["model", "layer", "neuron", "submission"])["bound"].all()
        return {(str(m), str(lay), int(n)) for (m, lay, n, _), ok in done.items() if ok}
