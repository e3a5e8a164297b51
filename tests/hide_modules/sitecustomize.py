"""Simulates a machine without some modules (``AND_HIDE_MODULES``, comma-separated): they import only from the
GPU check's temporary site folder. A test puts this folder on PYTHONPATH of a child Python (test_gpu_check.py)."""

import os
import sys
from importlib.machinery import PathFinder

HIDDEN = set(filter(None, os.environ.get("AND_HIDE_MODULES", "").split(",")))


class _Hide:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if path is not None or name.split(".")[0] not in HIDDEN:
            return None
        allowed = [p for p in sys.path if "and-gpu-check-site" in p]
        spec = PathFinder.find_spec(name, allowed) if allowed else None
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
        return spec


sys.meta_path.insert(0, _Hide)
