"""The app's view of a build: what is running, what is finished, in words (no streamlit here).

Read from ``<database>.build.json`` (``store.build_status``), never from the database, so it also answers
while the build holds the database for a commit.

* ``banner(database) -> (level, text) | None``: a running build (its step group, step and progress, the
  groups finished), a build that stopped or failed before finishing, or None (finished / never built).
* ``computing(database, stage)``: a running build has not finished ``stage``'s step group yet, so a page
  says "being computed" rather than "not in this database".
"""

from __future__ import annotations

from pathlib import Path

from and_engine.pipeline.graph import STAGE
from and_engine.store.build_status import BuildStatus, read_status

GROUP_NAMES = {"probe": "probing set", "models": "models and activations", "describe": "captions and summaries",
               "dissect": "Modules A-C", "analyses": "analyses (pruning, feature importance, ...)"}


def _step_text(status: BuildStatus) -> str:
    step = status.step.replace("model=", "").replace("layer=", "")
    bar = status.bar or {}
    frac = status.fraction
    if frac is not None:
        return f"{step or bar.get('desc', '')}: {bar.get('done', 0):,} of {bar.get('total', 0):,} ({frac:.0%})"
    return step or "between steps"


def banner(database: str | Path) -> tuple[str, str] | None:
    """(``info`` | ``warning``, text) about a build of ``database`` that is running or did not finish."""
    status = read_status(database)
    if status is None or status.state == "done":
        return None
    done = ", ".join(GROUP_NAMES.get(g, g) for g in status.finished_groups) or "nothing yet"
    where = GROUP_NAMES.get(status.group, status.group)
    if status.running:
        return "info", (f"A build is running (since {status.started_at} UTC, process {status.pid}), now {where}: "
                        f"{_step_text(status)}. Finished: {done}. Pages show what is finished; the rest appears "
                        "as it is committed.")
    how = {"failed": f"failed ({status.error})", "interrupted": "was interrupted"}.get(
        status.state, f"stopped (process {status.pid} is gone)")
    return "warning", (f"The build started {status.started_at} UTC {how} during {where or 'its start'}. Pages show "
                       f"what it finished ({done}); build again to complete it (finished steps are kept).")


def state_key(database: str | Path) -> tuple:
    """Changes when the build finishes a step group or ends (the app then reruns its page)."""
    status = read_status(database)
    if status is None:
        return ()
    return status.run_id, status.running, status.state, tuple(status.finished_groups)


def computing(database: str | Path, stage: str) -> bool:
    """Whether a running build has yet to finish the step group of ``stage``."""
    status = read_status(database)
    return bool(status and status.running and STAGE[stage].group not in status.finished_groups)


def missing_text(database: str | Path, stage: str, what: str, absent: str | None = None) -> str:
    """What a page says for an empty result: being computed by the running build, else ``absent`` (default
    "No <what> in this database.")."""
    if computing(database, stage):
        return f"{what[:1].upper()}{what[1:]}: being computed by the running build (shown once it is committed)."
    return absent or f"No {what} in this database."
