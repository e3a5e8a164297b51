"""Lint is part of the tests: ruff over the whole project must report nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from and_engine.config import PROJECT_ROOT


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", str(PROJECT_ROOT)], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_engine_never_imports_streamlit():
    offenders = [str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "and_engine").rglob("*.py")
                 if "import streamlit" in p.read_text() or "from streamlit" in p.read_text()]
    assert offenders == []
