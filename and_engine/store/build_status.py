"""What a running build is doing, for other processes (the app), and one build per database at a time.

* ``<database>.build.json``: the build's run id, process id, start, state (``runs.status``: ``running``,
  ``done``, ``failed``, ``interrupted``), current step group and step, its progress bar (description, done,
  total), the steps computed / skipped so far and the stages finished. Written by ``StatusWriter`` (atomically replaced,
  at most every ``min_interval_s`` unless the step changes), read by ``read_status`` without touching the
  database, so the app can say what is running while the build holds the database for a commit.
* ``build_lock``: an exclusive ``flock`` on ``<database>.build.lock`` for the build's whole length; the
  system releases it when the process ends, even when killed. A second build waits (or refuses).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from and_engine.store.schema import RUN_STATUSES

STATES = RUN_STATUSES  # the state says what runs.status says


class BuildRunningError(RuntimeError):
    """Another build holds this database's build lock."""


def status_path(database: str | Path) -> Path:
    return Path(str(database) + ".build.json")


def lock_path(database: str | Path) -> Path:
    return Path(str(database) + ".build.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


@dataclass
class BuildStatus:
    """The last state a build wrote (times are ISO strings, UTC)."""

    run_id: str
    pid: int
    config_name: str
    started_at: str
    updated_at: str = ""
    state: str = "running"
    group: str = ""  # the step group running (probe, models, describe, dissect, analyses)
    step: str = ""  # "stage scope" of the step running, "" between steps
    bar: dict = field(default_factory=dict)  # {"desc", "done", "total"} of the current progress bar
    computed: int = 0  # steps computed by this build so far
    skipped: int = 0  # steps found up to date
    finished_groups: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def running(self) -> bool:
        """Still running: it says so and its process is alive (a killed build says ``running`` forever)."""
        return self.state == "running" and _alive(self.pid)

    @property
    def stopped(self) -> bool:
        """It says ``running`` but its process is gone (killed, machine restarted)."""
        return self.state == "running" and not _alive(self.pid)

    @property
    def fraction(self) -> float | None:
        """done / total of the current bar, or None without one."""
        total = self.bar.get("total") or 0
        return min(1.0, float(self.bar.get("done", 0)) / total) if total else None


def read_status(database: str | Path) -> BuildStatus | None:
    """The status file beside ``database`` (None when absent or unreadable: no build ever wrote one)."""
    try:
        data = json.loads(status_path(database).read_text())
        return BuildStatus(**{k: v for k, v in data.items() if k in BuildStatus.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


class StatusWriter:
    """Keeps ``<database>.build.json`` up to date for one build."""

    def __init__(self, database: str | Path, run_id: str, config_name: str, min_interval_s: float = 1.0):
        self.path = status_path(database)
        self.status = BuildStatus(run_id, os.getpid(), config_name, _now())
        self.min_interval_s = min_interval_s
        self._written = 0.0
        self.update(force=True)

    def update(self, force: bool = False, **fields) -> None:
        """Set ``fields`` and write the file (throttled unless ``force``)."""
        for k, v in fields.items():
            setattr(self.status, k, v)
        now = time.monotonic()
        if not force and now - self._written < self.min_interval_s:
            return
        self._written = now
        self.status.updated_at = _now()
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(asdict(self.status)))
            os.replace(tmp, self.path)
        except OSError:  # a read-only folder: the build itself must not fail for its status file
            pass


@contextlib.contextmanager
def build_lock(database: str | Path, wait_s: float = 0.0,
               on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the build lock of ``database`` for the block; wait up to ``wait_s`` for another build, then
    raise BuildRunningError naming its process."""
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        start, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                other = read_status(database)
                who = f"process {other.pid} (run {other.run_id})" if other and other.running else "another process"
                if time.monotonic() - start >= wait_s:
                    raise BuildRunningError(f"another build of {Path(database).name} is running: {who}") from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for the build running in {who} to finish")
                    told = True
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
