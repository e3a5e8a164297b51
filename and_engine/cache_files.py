"""Files that concurrent builds share (the checkpoint cache under ``run.cache_dir``, the model-identity cache):
an exclusive lock across processes, unique temporary names and an atomic publish.

* ``file_lock(path)``: hold an exclusive ``flock`` on ``path`` (created if absent) for a ``with`` block;
  ``on_wait(message)`` is called once if another process holds it.
* ``temporary_sibling(path)``: a name next to ``path`` no other process or thread uses.
* ``write_text_atomic(path, text)``: readers see the old file or the new one, never a partial one.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """``<name>.tmp-<pid>-<thread>-<random>`` beside ``path``: unique per process, thread and call."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def file_lock(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (``fcntl.flock``), released when the block ends or the
    process dies. Blocks while another process holds it, calling ``on_wait`` once. Where the lock file cannot
    be created (a read-only cache), nothing can be written there either: the block runs unlocked."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a")  # noqa: SIM115 (closed below)
    except OSError:
        yield
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"waiting for another process holding {path}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a unique temporary sibling, then rename it over ``path`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
