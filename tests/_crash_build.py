"""Run ``python -m and_engine build`` but SIGKILL the process in the middle of a stage's transaction.

Usage: python tests/_crash_build.py CONFIG STAGE — the process kills itself right after the first table
of the first step of STAGE has been inserted, before COMMIT (the worst moment for consistency).
"""

from __future__ import annotations

import os
import signal
import sys

from and_engine.cli import main
from and_engine.store.results import ResultsStore

config_path, crash_stage = sys.argv[1], sys.argv[2]
original_commit = ResultsStore.commit_step
original_insert = ResultsStore._insert_rows


def commit_step(self, run_id, stage, *args, **kwargs):
    self._crash_armed = stage == crash_stage
    return original_commit(self, run_id, stage, *args, **kwargs)


def insert_rows(self, table, tbl):
    original_insert(self, table, tbl)
    if getattr(self, "_crash_armed", False):
        print(f"killing the build inside stage {crash_stage!r} after inserting into {table!r}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


ResultsStore.commit_step = commit_step
ResultsStore._insert_rows = insert_rows
sys.exit(main(["build", "--config", config_path, "--quiet"]))
