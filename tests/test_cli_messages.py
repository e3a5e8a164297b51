"""What ``status`` / ``report`` say (and their exit status) when there is nothing built to show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from and_engine.cli import main
from and_engine.store.results import ResultsStore


def _config(tmp_path: Path, probing: Path | None = None) -> Path:
    toml = tmp_path / "mine.toml"
    toml.write_text(f'[run]\ndatabase = "{tmp_path / "mine.duckdb"}"\n[probing_set]\nkind = "folder"\n'
                    f'path = "{probing or tmp_path / "no-such-folder"}"\n')
    return toml


def test_status_and_report_on_a_never_built_config_name_that_config(tmp_path, capsys):
    toml = _config(tmp_path)
    for command in ("status", "report"):
        assert main([command, "--config", str(toml)]) == 1
        err = capsys.readouterr().err
        assert f"no results database at {tmp_path / 'mine.duckdb'}" in err
        assert f"build it: python -m and_engine build --config {toml}" in err


def test_status_and_report_on_an_empty_database_say_so(tmp_path, capsys):
    toml = _config(tmp_path)
    with ResultsStore(tmp_path / "mine.duckdb") as store:
        store.record_run("r1", "mine", "{}", "h", "v", "running")
    assert main(["status", "--config", str(toml)]) == 1
    err = capsys.readouterr().err
    assert "holds no finished step (the last build, started" in err and "is 'running'" in err
    assert f"--config {toml}" in err
    assert main(["report", "--config", str(toml)]) == 1
    captured = capsys.readouterr()
    assert "holds no built model yet" in captured.err and captured.out == ""  # no bare report header


def test_status_on_a_database_a_build_holds_says_so(tmp_path, capsys, monkeypatch):
    from and_engine import cli

    monkeypatch.setattr(cli, "READ_WAIT_S", 2.0)  # status waits this long for a commit (60 s by default)
    toml = _config(tmp_path)
    ResultsStore(tmp_path / "mine.duckdb").close()
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "mine.duckdb")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        assert main(["status", "--config", str(toml)]) == 1
        assert "a build may be writing it" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
