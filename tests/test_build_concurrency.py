"""A build and the app on one database (issue 13, issue 12 item 10): the build holds the database only while
it reads or commits, both sides wait for each other, the app shows what is running, one build at a time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _app_pages import run_page

from and_engine.cli import EXIT_BUILD_RUNNING, main
from and_engine.config import PROJECT_ROOT, load_config
from and_engine.explorer import build_progress
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.store.build_status import BuildRunningError, StatusWriter, build_lock, read_status
from and_engine.store.results import ResultsStore, StoreError, StoreLockedError

PYTHON = sys.executable
HOLD = textwrap.dedent("""
    import sys, time
    from and_engine.store.results import ResultsStore
    store = ResultsStore(sys.argv[1], read_only=True)
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))
    store.close()
""")
PROBE = textwrap.dedent("""
    import sys
    from and_engine.store.results import ResultsStore, StoreError
    print("ready", flush=True)
    for _ in sys.stdin:
        try:
            ResultsStore(sys.argv[1], read_only=True).close()
            print("opened", flush=True)
        except StoreError:
            print("locked", flush=True)
""")

def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


def _hold_reader(db: Path, seconds: float) -> subprocess.Popen:
    """Another process (the app during a page run) holding a read connection for ``seconds``."""
    proc = subprocess.Popen([PYTHON, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env=_env(), cwd=PROJECT_ROOT)
    assert proc.stdout.readline().strip() == "open"
    return proc


@pytest.fixture
def rebuild(tiny_build, tmp_path):
    """A copy of the tiny build whose config asks for one more feature-importance seed: a build of it
    recomputes only the feature-importance steps (checkpoints come from the tiny build's cache)."""
    path, config, _ = tiny_build
    db = tmp_path / "r.duckdb"
    shutil.copyfile(config.resolve(config.run.database), db)
    text = re.sub(r'database = "[^"]*"', f'database = "{db}"', Path(path).read_text(), count=1)
    toml = tmp_path / "r.toml"
    toml.write_text(text.replace("seeds = [0]", "seeds = [0, 1]"))
    return toml, load_config(toml), db


def test_a_build_waits_for_a_reader_instead_of_failing(rebuild):
    toml, config, db = rebuild
    reader = _hold_reader(db, 4.0)
    try:
        with pytest.raises(StoreLockedError):
            ResultsStore(db, wait_s=0.0)  # what every build met before: "cannot open", at once
        progress = Progress(quiet=True)
        result = build(config, progress)  # waits for the reader, then builds
    finally:
        reader.wait(timeout=30)
    assert [r.split()[0] for r in result.executed] == ["feature_importance"]
    status = read_status(db)
    assert status.state == "done" and status.finished_groups[-1] == "analyses" and not status.running


def test_the_build_releases_the_database_while_a_step_computes(tmp_path):
    db = tmp_path / "x.duckdb"
    probe = subprocess.Popen([PYTHON, "-c", PROBE, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=_env(), cwd=PROJECT_ROOT)  # another process (the app)

    def try_open() -> str:
        probe.stdin.write("go\n")
        probe.stdin.flush()
        return probe.stdout.readline().strip()

    try:
        assert probe.stdout.readline().strip() == "ready"
        store = ResultsStore(db, idle_s=1.5)
        store.count("steps")
        assert try_open() == "locked"  # held right after use
        time.sleep(2.5)
        assert try_open() == "opened"  # released when idle
        assert store.count("steps") == 0 and store._db.opened == 2  # reopened on the next use
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.count("steps")
    finally:
        probe.stdin.close()
        probe.wait(timeout=30)


@pytest.mark.slow
def test_the_app_reads_during_a_build(rebuild, monkeypatch, tmp_path):
    toml, config, db = rebuild
    held = Path(str(db) + ".held")
    proc = subprocess.Popen([PYTHON, str(PROJECT_ROOT / "tests" / "_slow_build.py"), str(toml),
                             "feature_importance", "60"], env=_env(), cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not held.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert held.exists(), proc.communicate()[0][-2000:] if proc.poll() is not None else "build too slow"
        status = read_status(db)
        assert status.running and status.step.startswith("feature_importance") and status.pid == proc.pid
        assert status.finished_groups == ["probe", "models", "describe", "dissect", "scores"]
        monkeypatch.setenv("AND_EXPLORER_DB", str(db))
        monkeypatch.setenv("AND_EXPLORER_RATINGS", str(tmp_path / "ratings.duckdb"))
        at = run_page("pages/overview.py")  # the build holds its store, idle: the page gets in
        assert not at.exception and not at.error
        banner = " ".join(i.value for i in at.info)
        assert "A build is running" in banner and "feature" in banner and "Modules A" in banner
        assert len(at.dataframe) >= 2  # models and layers of the finished steps
        # a reader (a page run) holding the database when the build wants to commit: the build waits
        with ResultsStore(db, read_only=True, wait_s=30) as reader:
            assert reader.count("models") == 2
            Path(str(db) + ".go").write_text("")  # the held build goes on, then commits
            time.sleep(2.0)
        out = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-2000:]
    assert read_status(db).state == "done" and build_progress.banner(db) is None
    with ResultsStore(db, read_only=True) as store:
        assert sorted(store.read("feature_importance", ["seed"])["seed"].unique()) == [0, 1]


def test_one_build_at_a_time(rebuild, capsys):
    toml, config, db = rebuild
    with build_lock(db):
        with pytest.raises(BuildRunningError, match="another build"):
            build(config, Progress(quiet=True), wait_s=0.0)
        assert main(["build", "--config", str(toml), "--quiet", "--no-wait"]) == EXIT_BUILD_RUNNING
    assert "another build" in capsys.readouterr().err
    released = threading.Event()

    def later():
        time.sleep(1.0)
        released.set()

    with build_lock(db):
        threading.Thread(target=later).start()
    with build_lock(db, wait_s=5.0):  # free again
        assert released.wait(5)


def test_a_failed_build_says_so(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text(f'[run]\ndatabase = "{tmp_path / "b.duckdb"}"\ncache_dir = "{tmp_path / "cache"}"\n'
                    f'[probing_set]\nkind = "demo"\npath = "{PROJECT_ROOT / "data" / "demo"}"\nmax_clips = 26\n'
                    '[[models]]\nname = "m"\nkind = "ast-checkpoint"\ncheckpoint = "/nonexistent/ast"\n')
    with pytest.raises(Exception, match="nonexistent"):
        build(load_config(toml), Progress(quiet=True))
    status = read_status(tmp_path / "b.duckdb")
    assert status.state == "failed" and "nonexistent" in status.error and status.finished_groups == ["probe"]
    level, text = build_progress.banner(tmp_path / "b.duckdb")
    assert level == "warning" and "failed" in text and "probing set" in text


def test_banner_and_missing_texts_follow_the_status_file(tmp_path):
    db = tmp_path / "s.duckdb"
    assert build_progress.banner(db) is None and build_progress.missing_text(db, "pruning", "pruning results") \
        == "No pruning results in this database."
    writer = StatusWriter(db, "run1", "demo")  # this process: alive
    writer.update(force=True, group="analyses", step="pruning model=m", finished_groups=["probe", "models"],
                  bar={"desc": "pruning m", "done": 50, "total": 200})
    level, text = build_progress.banner(db)
    assert level == "info" and "pruning m: 50 of 200 (25%)" in text and "models and activations" in text
    assert build_progress.computing(db, "pruning") and not build_progress.computing(db, "activations")
    assert "being computed" in build_progress.missing_text(db, "pruning", "pruning results")
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    writer.status.pid = dead.pid  # the build was killed
    writer.update(force=True)
    level, text = build_progress.banner(db)
    assert level == "warning" and "stopped" in text and not build_progress.computing(db, "pruning")
    writer.update(force=True, state="done")
    assert build_progress.banner(db) is None


def test_an_interrupted_build_says_so(tmp_path, monkeypatch):
    from and_engine.pipeline import build as build_module

    toml = tmp_path / "i.toml"
    toml.write_text(f'[run]\ndatabase = "{tmp_path / "i.duckdb"}"\ncache_dir = "{tmp_path / "cache"}"\n'
                    f'[probing_set]\nkind = "demo"\npath = "{PROJECT_ROOT / "data" / "demo"}"\nmax_clips = 26\n')

    def ctrl_c(ctx):
        raise KeyboardInterrupt

    monkeypatch.setitem(build_module.RUNNERS, "models", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        build(load_config(toml), Progress(quiet=True))
    status = read_status(tmp_path / "i.duckdb")
    assert status.state == "interrupted" and status.finished_groups == ["probe"]
    with ResultsStore(tmp_path / "i.duckdb", read_only=True) as store:
        assert store.read("runs", ["status"])["status"].tolist() == ["interrupted"]
    level, text = build_progress.banner(tmp_path / "i.duckdb")
    assert level == "warning" and "was interrupted" in text and "probing set" in text


def test_a_bar_reset_reaches_the_status_file(tmp_path):
    progress = Progress(quiet=True)
    progress.status = StatusWriter(tmp_path / "r.duckdb", "run1", "demo", min_interval_s=0.0)
    with progress.bar(10, "round 1") as bar:
        bar.update(3)
        bar.reset(total=5)  # an LLM round learns how many prompts it really sends
        assert read_status(tmp_path / "r.duckdb").bar == {"desc": "round 1", "done": 0, "total": 5}
        bar.update(2)
    assert bar.n == 2 and read_status(tmp_path / "r.duckdb").bar == {}


def test_a_new_bar_is_written_at_once(tmp_path):
    """The status file is throttled (one write a second), but a bar that starts or ends right after another
    write is shown at once: the app said only the step's name for minutes until the first chunk finished."""
    progress = Progress(quiet=True)
    progress.status = StatusWriter(tmp_path / "n.duckdb", "run1", "demo")  # default throttle
    progress.report(force=True, step="feature_importance model=m")
    with progress.bar(4240, "feature importance m"):
        assert read_status(tmp_path / "n.duckdb").bar == {"desc": "feature importance m", "done": 0, "total": 4240}
    assert read_status(tmp_path / "n.duckdb").bar == {}
