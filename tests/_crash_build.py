"""Run ``python -m and_engine build`` but SIGKILL the process in the middle of a stage's transaction.

Usage: python tests/_crash_build.py CONFIG STAGE — the process kills itself right after the first table
of the first step of STAGE has been inserted, before COMMIT (the worst moment for consistency).
"""

from __future__ import annotations

import sys

import fakes

from and_engine.cli import main

config_path, crash_stage = sys.argv[1], sys.argv[2]
fakes.kill_inside_commit(crash_stage)
sys.exit(main(["build", "--config", config_path, "--quiet"]))
