"""LiveCache: LLM answers the app asks for live (the neuron page's local LLM), in a side database.

The results database is read-only for the app, so live answers go to their own DuckDB file
(``run.live_llm_database``, or ``$AND_EXPLORER_LIVE_CACHE``), with the connection discipline of the ratings
(``side_db.SideDatabase``). Its ``llm_cache`` table has the results database's ``llm_cache`` columns
(``schema.BOOK_TABLES``): cache key, prompt, response, backend, model identity, sampling parameters and
time, the provenance of every answer. ``cache_get`` / ``cache_put`` are what ``backends.llm.CachedLLM`` takes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from and_engine.store import schema
from and_engine.store.side_db import SideDatabase

CHUNK = 5000  # keys per IN (...) list


class LiveCache(SideDatabase):
    """``llm_cache`` rows in a side database, safe for concurrent sessions and processes."""

    TABLES = {"llm_cache": schema.BOOK_TABLES["llm_cache"]}
    KIND = "live LLM cache"

    def rows(self, keys: list[str]) -> pd.DataFrame:
        """-> the ``llm_cache`` rows (every column) of the keys present, in no particular order."""
        cols = schema.columns("llm_cache")

        def read(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
            parts = [con.execute(f'SELECT {", ".join(cols)} FROM "llm_cache" WHERE cache_key IN '
                                 f'({", ".join("?" * len(keys[i:i + CHUNK]))})', keys[i:i + CHUNK]).df()
                     for i in range(0, len(keys), CHUNK)]
            return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)

        return self._with_connection(read, read_only=True)

    def cache_get(self, keys: list[str]) -> dict[str, str]:
        """{cache_key: response} for the keys present."""
        df = self.rows(list(keys))
        return dict(zip(df["cache_key"], df["response"]))

    def cache_put(self, rows: list[dict]) -> None:
        """Insert answers (``llm_cache`` columns; ``created_at`` defaults to now); keys present are kept; one
        transaction, retried as a whole while another process holds the file."""
        if not rows:
            return
        cols = schema.columns("llm_cache")
        now = datetime.now(UTC).replace(tzinfo=None)
        frame = pd.DataFrame([{c: (r.get(c) or now) if c == "created_at" else r.get(c) for c in cols} for r in rows],
                             columns=cols).drop_duplicates("cache_key")
        names = ", ".join(cols)

        def write(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("_live_rows", frame)
                con.execute(f'INSERT INTO "llm_cache" ({names}) SELECT {names} FROM _live_rows '
                            'WHERE cache_key NOT IN (SELECT cache_key FROM "llm_cache")')
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("_live_rows")

        self._with_connection(write, read_only=False)
