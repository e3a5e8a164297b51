"""Run ``python -m and_engine build`` with one stage held open (a stand-in for a long analysis).

    python tests/_slow_build.py CONFIG STAGE SECONDS

While ``STAGE`` computes, the build reads the database, writes ``<database>.held`` (so a test knows the
moment) and waits until the test writes ``<database>.go`` (at most ``SECONDS``), with the store's connection
just used (its idle release must still let readers in).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from and_engine.cli import main
from and_engine.pipeline import core

config_path, stage, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
original = core.run_step


def run_step(ctx, name, scope, params, upstream, compute):
    def slow():
        if name == stage:
            ctx.store.count("steps")  # the store was just used: only its idle release lets readers in
            Path(str(ctx.store.path) + ".held").write_text(name)
            go, deadline = Path(str(ctx.store.path) + ".go"), time.monotonic() + seconds
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return compute()

    return original(ctx, name, scope, params, upstream, slow)


core.run_step = run_step
sys.exit(main(["build", "--config", config_path, "--quiet"]))
