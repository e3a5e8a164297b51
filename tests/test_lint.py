"""Lint is part of the tests: ruff over the whole project must report nothing; its import rules reach where they
should."""

from __future__ import annotations

import subprocess
import sys
import tomllib
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


def _ruff_stdin(path: str, source: str) -> str:
    """Ruff's findings for ``source`` as if it were the project file ``path`` (per-file rules apply)."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", "--stdin-filename", path, "-"], input=source,
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    return result.stdout + result.stderr


def test_import_rules_ban_duckdb_in_stages_and_analyses_and_tests_in_benchmarks():
    source = "def f():\n    import duckdb\n    from _tiny import write_config\n    return duckdb, write_config\n"
    for path in ("and_engine/stages/x.py", "and_engine/analyses/x.py"):
        assert "`duckdb` is banned" in _ruff_stdin(path, source)
    assert "`_tiny` is banned" in _ruff_stdin("benchmarks/x.py", source)
    assert "TID251" not in _ruff_stdin("and_engine/store/x.py", source)  # the store does database I/O
    assert "TID251" not in _ruff_stdin("tests/x.py", source)


def test_every_test_helper_module_is_banned_from_benchmarks():
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    banned = set(config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"])
    helpers = {p.stem for p in (PROJECT_ROOT / "tests").glob("*.py") if not p.stem.startswith("test_")}
    assert "tests" in banned and helpers - banned == set()
