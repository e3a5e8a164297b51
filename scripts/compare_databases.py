"""Compare the result tables of two results databases, ignoring provenance columns.

    .venv/bin/python scripts/compare_databases.py OLD.duckdb NEW.duckdb [--tolerance 1e-6] [--ignore TABLE ...]

For every table the two databases share (except the bookkeeping tables ``runs``, ``steps``, ``llm_cache``):
the rows without ``step_id``, sorted by every column, are compared; float columns (and float lists) within
``--tolerance``. Prints one line per table (identical / differs: how) and the tables only one side holds.
Exit status 0 when every shared table is identical, 1 otherwise. Used to check that a refactoring or a
speed-up leaves the demo's results unchanged.
"""

from __future__ import annotations

import argparse
import sys

import duckdb
import numpy as np
import pandas as pd

BOOKKEEPING = {"runs", "steps", "llm_cache"}


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _frame(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table]).fetchall() if r[0] != "step_id"]
    names = ", ".join(f'"{c}"' for c in cols)
    df = con.execute(f'SELECT {names} FROM "{table}"').df()
    key = df.map(lambda v: repr(list(v)) if isinstance(v, (list, np.ndarray)) else repr(v))
    order = key.sort_values(list(key.columns)).index if len(df) else df.index
    return df.loc[order].reset_index(drop=True)


def _same_value(a: object, b: object, tol: float) -> bool:
    if isinstance(a, (list, np.ndarray)) or isinstance(b, (list, np.ndarray)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            return bool(np.allclose(a.astype(float), b.astype(float), atol=tol, rtol=0, equal_nan=True))
        return bool((a == b).all())
    if pd.isna(a) or pd.isna(b):  # None, NaN, NaT: equal only to another missing value
        return bool(pd.isna(a) and pd.isna(b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= tol
    return bool(a == b)


def compare_table(old: pd.DataFrame, new: pd.DataFrame, tol: float) -> str:
    """'' when equal, else a one-line description of the first difference."""
    if list(old.columns) != list(new.columns):
        return f"columns differ: {list(old.columns)} vs {list(new.columns)}"
    if len(old) != len(new):
        return f"{len(old)} vs {len(new)} rows"
    for col in old.columns:
        for i, (a, b) in enumerate(zip(old[col], new[col])):
            if not _same_value(a, b, tol):
                return f"column {col!r}, sorted row {i}: {str(a)[:80]!r} vs {str(b)[:80]!r}"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="absolute tolerance for floats")
    parser.add_argument("--ignore", action="append", default=[], help="a table to leave out (repeatable)")
    args = parser.parse_args(argv)
    a = duckdb.connect(args.old, read_only=True)
    b = duckdb.connect(args.new, read_only=True)
    ta, tb = _tables(a) - BOOKKEEPING - set(args.ignore), _tables(b) - BOOKKEEPING - set(args.ignore)
    same = True
    for table in sorted(ta & tb):
        diff = compare_table(_frame(a, table), _frame(b, table), args.tolerance)
        same &= not diff
        print(f"{table:<24} {'identical' if not diff else 'DIFFERS: ' + diff}")
    for table in sorted(ta ^ tb):
        print(f"{table:<24} only in {'old' if table in ta else 'new'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
