"""ResultsStore: the only place that talks SQL to the results database (DuckDB).

Identifiers (tables, columns) come only from ``schema.TABLES``; values are always bound parameters.
A step's rows are replaced atomically: delete the old rows of (stage, scope), insert the new ones
and the ``steps`` row, all in one transaction (see ``commit_step``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from and_engine.store import schema
from and_engine.store.connection import SharedConnection, StoreError, StoreLockedError

__all__ = ["ResultsStore", "StoreError", "StoreLockedError", "check_values", "scope_key"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def scope_key(scope: Mapping[str, Any]) -> str:
    """{'model': 'yamnet', 'layer': 'b1'} -> 'layer=b1/model=yamnet' (sorted, stable)."""
    return "/".join(f"{k}={scope[k]}" for k in sorted(scope)) or "-"


def _check_table(table: str) -> list[str]:
    if table not in schema.TABLES:
        raise StoreError(f"unknown table {table!r}")
    return schema.columns(table)


def _check_columns(table: str, cols: Iterable[str]) -> list[str]:
    known = _check_table(table)
    cols = list(cols)
    bad = [c for c in cols if c not in known]
    if bad:
        raise StoreError(f"unknown column(s) {bad} for table {table!r}; known: {known}")
    return cols


class ResultsStore:
    """A DuckDB results database. ``read_only=True`` for the app and reports.

    ``wait_s``: how long to wait, retrying, while another process holds the file (0 = fail at once);
    ``idle_s``: close the file after this many seconds without use (the build: other processes get in
    while a step computes); ``on_wait(message)`` is told once when a wait gets long.
    """

    def __init__(self, path: str | Path, read_only: bool = False, wait_s: float = 0.0, idle_s: float | None = None,
                 on_wait: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise StoreError(f"results database not found: {self.path} (build it: python -m and_engine build)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = SharedConnection(self.path, read_only, wait_s, idle_s, on_wait)
        with self._db.use() as con:
            if not read_only:
                for ddl in schema.create_statements():
                    con.execute(ddl)

    def release(self) -> None:
        """Close the file until the next use (other processes may open it meanwhile)."""
        self._db.release()

    # ---------- reads ----------
    def read(self, table: str, columns: list[str] | None = None, order_by: list[str] | None = None,
             **filters: Any) -> pd.DataFrame:
        """Rows of ``table`` matching ``column=value`` / ``column=[values]`` filters -> DataFrame."""
        cols = _check_columns(table, columns) if columns else _check_table(table)
        _check_columns(table, order_by or [])
        where, params = _where(table, filters)
        if where is None:
            return pd.DataFrame(columns=cols)
        sql = f"SELECT {_names(cols)} FROM \"{table}\"" + (f" WHERE {where}" if where else "")
        if order_by:
            sql += " ORDER BY " + _names(order_by)
        return self.query_df(sql, params)

    def read_neurons(self, table: str, columns: list[str], keys: pd.DataFrame, **filters: Any) -> pd.DataFrame:
        """Rows of ``table`` for the neurons of ``keys`` (columns model, layer, neuron; any layers and models) that
        match ``filters`` -> DataFrame of model, layer, neuron + ``columns``, in one query: one indexed lookup per
        (model, layer), as ``read`` does for one layer."""
        cols = ["model", "layer", "neuron", *_check_columns(table, columns)]
        if clash := set(filters) & {"model", "layer", "neuron"}:
            raise StoreError(f"read_neurons takes the neurons from keys, not from filters: {sorted(clash)}")
        parts, params = [], []
        for (model, layer), group in keys.groupby(["model", "layer"], sort=False):
            where, args = _where(table, {**filters, "model": model, "layer": layer,
                                         "neuron": sorted({int(n) for n in group["neuron"]})})
            if where is not None:
                parts.append(f"SELECT {_names(cols)} FROM \"{table}\" WHERE {where}")
                params += args
        if not parts:
            return pd.DataFrame(columns=cols)
        return self.query_df(" UNION ALL ".join(parts), params)

    def query_df(self, sql: str, params: list | tuple = ()) -> pd.DataFrame:
        """Run a parameterised SELECT -> DataFrame (thread-safe on this store's connection)."""
        with self._db.use() as con:
            return con.execute(sql, list(params)).df()

    def count(self, table: str, **filters: Any) -> int:
        _check_columns(table, filters)
        where = " AND ".join(f'"{c}" = ?' for c in filters)
        sql = f'SELECT count(*) FROM "{_table(table)}"' + (f" WHERE {where}" if where else "")
        with self._db.use() as con:
            return int(con.execute(sql, list(filters.values())).fetchall()[0][0])

    def read_activations(self, model: str, layer: str) -> np.ndarray:
        """-> (n_clips, n_neurons) float32 activation matrix of one layer (rows in clip_id order)."""
        with self._db.use() as con:
            tbl = con.sql(
                'SELECT "neuron", "values" FROM "activations" WHERE "model" = ? AND "layer" = ? ORDER BY "neuron"',
                params=[model, layer],
            ).to_arrow_table()
        if tbl.num_rows == 0:
            raise StoreError(f"no activations for model={model!r} layer={layer!r}")
        values = tbl.column("values").combine_chunks()
        n_neurons = tbl.num_rows
        flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        return flat.reshape(n_neurons, -1).T.copy()

    def fingerprint(self, stage: str, scope: Mapping[str, Any]) -> str | None:
        """The fingerprint of the committed step (stage, scope), or None if it was never completed."""
        with self._db.use() as con:
            row = con.execute(
                'SELECT "fingerprint" FROM "steps" WHERE "stage" = ? AND "scope" = ?', [stage, scope_key(scope)]
            ).fetchall()
        return row[0][0] if row else None

    # ---------- writes ----------
    def commit_step(self, run_id: str, stage: str, scope: Mapping[str, Any], params: Mapping[str, Any],
                    fingerprint: str, tables: Mapping[str, pd.DataFrame | pa.Table], started_at: datetime,
                    code_version: str) -> str:
        """Atomically replace the rows of (stage, scope) with ``tables`` and record the step -> step_id."""
        step_id = uuid.uuid4().hex[:16]
        key = scope_key(scope)
        prepared = {name: _prepare(name, rows, step_id) for name, rows in tables.items()}
        n_rows = sum(t.num_rows for t in prepared.values())
        with self._db.use() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                old = [r[0] for r in con.execute(
                    'SELECT "step_id" FROM "steps" WHERE "stage" = ? AND "scope" = ?', [stage, key]).fetchall()]
                if old:
                    marks = ", ".join("?" for _ in old)
                    for name in schema.RESULT_TABLES:
                        con.execute(f'DELETE FROM "{name}" WHERE "step_id" IN ({marks})', old)
                    con.execute(f'DELETE FROM "steps" WHERE "step_id" IN ({marks})', old)
                for name, tbl in prepared.items():
                    self._insert_rows(name, tbl)
                con.execute(
                    'INSERT INTO "steps" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                    [step_id, run_id, stage, key, json.dumps(params, sort_keys=True, default=str), fingerprint,
                     code_version, started_at, _now(), n_rows],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return step_id

    def delete_steps_except(self, keep: set[tuple[str, str]], stages: Iterable[str] | None = None
                            ) -> list[tuple[str, str]]:
        """Delete the steps of ``stages`` (default: all) whose (stage, scope key) is not in ``keep``, with
        their rows, in one transaction -> the (stage, scope) pairs removed.

        The build calls this after each step group, so that a model, layer or option dropped from the
        configuration leaves no stale rows behind for later stages (or the app) to read.
        """
        only = None if stages is None else set(stages)
        with self._db.use() as con:
            steps = con.execute('SELECT "step_id", "stage", "scope" FROM "steps"').fetchall()
            gone = [(sid, stage, scope) for sid, stage, scope in steps
                    if (stage, scope) not in keep and (only is None or stage in only)]
            if not gone:
                return []
            ids = [sid for sid, _, _ in gone]
            marks = ", ".join("?" for _ in ids)
            con.execute("BEGIN TRANSACTION")
            try:
                for name in schema.RESULT_TABLES:
                    con.execute(f'DELETE FROM "{name}" WHERE "step_id" IN ({marks})', ids)
                con.execute(f'DELETE FROM "steps" WHERE "step_id" IN ({marks})', ids)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return [(stage, scope) for _, stage, scope in gone]

    def _insert_rows(self, table: str, tbl: pa.Table) -> None:
        """INSERT a prepared arrow table into ``table`` (inside the caller's transaction: same connection)."""
        with self._db.use() as con:
            con.register("_incoming", tbl)
            try:
                cols = ", ".join(f'"{c}"' for c in tbl.column_names)
                con.execute(f'INSERT INTO "{_table(table)}" ({cols}) SELECT {cols} FROM _incoming')
            finally:
                con.unregister("_incoming")

    def record_run(self, run_id: str, config_name: str, config_json: str, config_hash: str, code_version: str,
                   status: str, finished: bool = False) -> None:
        """Insert or update the ``runs`` row of this build (``status`` one of ``schema.RUN_STATUSES``)."""
        check_values("runs", pa.table({"status": [status]}))
        with self._db.use() as con:
            exists = con.execute('SELECT 1 FROM "runs" WHERE "run_id" = ?', [run_id]).fetchall()
            if exists:
                con.execute('UPDATE "runs" SET "status" = ?, "finished_at" = ? WHERE "run_id" = ?',
                                 [status, _now() if finished else None, run_id])
            else:
                con.execute('INSERT INTO "runs" VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                                 [run_id, config_name, config_json, config_hash, code_version, _now(), None, status])

    # ---------- LLM cache ----------
    def cache_get(self, keys: list[str]) -> dict[str, str]:
        """{cache_key: response} for the keys present in ``llm_cache``."""
        if not keys:
            return {}
        out: dict[str, str] = {}
        with self._db.use() as con:
            for i in range(0, len(keys), 5000):
                chunk = list(keys[i:i + 5000])
                marks = ", ".join("?" for _ in chunk)
                rows = con.execute(
                    f'SELECT "cache_key", "response" FROM "llm_cache" WHERE "cache_key" IN ({marks})', chunk
                ).fetchall()
                out.update(dict(rows))
        return out

    def cache_lengths(self, backend: str, llm_model: str, prefix: str) -> tuple[int, float]:
        """(answers, their mean length in characters) in ``llm_cache`` for one backend + model, of the prompts
        that start with ``prefix`` (a template's fixed start)."""
        with self._db.use() as con:
            n, chars = con.execute(
                'SELECT count(*), avg(length("response")) FROM "llm_cache" WHERE "backend" = ? AND "llm_model" = ? '
                'AND starts_with("prompt", ?)', [backend, llm_model, prefix]).fetchone()
        return int(n), float(chars or 0.0)

    def cache_put(self, rows: list[dict]) -> None:
        """Insert LLM answers (llm_cache columns); existing keys are kept; one transaction per call."""
        if not rows:
            return
        cols = schema.columns("llm_cache")
        now = _now()
        frame = pd.DataFrame([{c: (r.get(c) or now) if c == "created_at" else r.get(c) for c in cols} for r in rows],
                             columns=cols).drop_duplicates("cache_key")
        names = ", ".join(f'"{c}"' for c in cols)
        with self._db.use() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("_cache_rows", frame)
                con.execute(f'INSERT INTO "llm_cache" ({names}) SELECT {names} FROM _cache_rows '
                                 "ON CONFLICT DO NOTHING")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("_cache_rows")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _names(cols: Iterable[str]) -> str:
    return ", ".join(f'"{c}"' for c in cols)


def _where(table: str, filters: Mapping[str, Any]) -> tuple[str | None, list]:
    """``column=value`` / ``column=[values]`` filters -> (parameterised WHERE clause, "" for none; None when a list
    is empty: nothing matches, params)."""
    _check_columns(table, filters)
    where, params = [], []
    for col, value in filters.items():
        if isinstance(value, (list, tuple, set, np.ndarray)):
            value = list(value)
            if not value:
                return None, []
            where.append(f'"{col}" IN ({", ".join("?" for _ in value)})')
            params.extend(value)
        else:
            where.append(f'"{col}" = ?')
            params.append(value)
    return " AND ".join(where), params


def _table(name: str) -> str:
    _check_table(name)
    return name


def _prepare(table: str, rows: pd.DataFrame | pa.Table, step_id: str) -> pa.Table:
    """Validate columns against the schema and add ``step_id`` -> pyarrow Table."""
    if table not in schema.RESULT_TABLES:
        raise StoreError(f"{table!r} is not a result table")
    tbl = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    expected = [c for c, _ in schema.RESULT_TABLES[table]]
    missing = [c for c in expected if c not in tbl.column_names]
    extra = [c for c in tbl.column_names if c not in expected]
    if missing or extra:
        raise StoreError(f"rows for {table!r}: missing columns {missing}, unexpected columns {extra}")
    tbl = tbl.select(expected)
    check_values(table, tbl)
    return tbl.append_column("step_id", pa.array([step_id] * tbl.num_rows, pa.string()))


def check_values(table: str, rows: pa.Table) -> None:
    """Refuse values outside the contract: ``schema.VALUES`` for enumerated columns (nulls included),
    ranks below ``schema.FIRST_RANK``. StoreError names the table, the column, the bad and the allowed values."""
    for col, allowed in schema.VALUES.get(table, {}).items():
        seen = pc.unique(rows.column(col)).to_pylist()
        bad = sorted((v for v in seen if v not in allowed), key=str)
        if bad:
            raise StoreError(f"{table}.{col}: value(s) {bad} not allowed; allowed: {list(allowed)}")
    rank = schema.RANKED.get(table)
    if rank and rows.num_rows:
        low = pc.min(rows.column(rank)).as_py()
        if low is None or low < schema.FIRST_RANK or rows.column(rank).null_count:
            raise StoreError(f"{table}.{rank}: ranks start at {schema.FIRST_RANK}, got {low} "
                             f"({rows.column(rank).null_count} null)")

