"""The orchestrator: run every step group in order for a Config, skipping what is done.

Groups run in ``graph.GROUPS`` order: probe (clips) -> models (model, activations, extremes, maps) ->
describe (captions, summaries) -> dissect (Module A, B, C) -> scores -> analyses; ``RUNNERS`` holds each group's
step function ``(ctx) -> None``. ``until`` stops after a group (tests, partial builds). After each group,
the steps (and rows) of its stages that the configuration no longer produces — a model, layer or option
that was removed — are deleted, so no stale result survives a config change.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from and_engine.config import Config
from and_engine.pipeline import graph
from and_engine.pipeline.core import BuildContext, Progress, code_version
from and_engine.pipeline.steps_analyses import run_analyses_steps
from and_engine.pipeline.steps_describe import run_describe_steps
from and_engine.pipeline.steps_dissect import run_dissect_steps
from and_engine.pipeline.steps_models import run_model_steps
from and_engine.pipeline.steps_probe import run_probe_steps
from and_engine.pipeline.steps_scores import run_scores_steps
from and_engine.pipeline.validate import validate
from and_engine.probing import count_entries
from and_engine.store.build_status import StatusWriter, build_lock
from and_engine.store.results import ResultsStore

GROUPS = graph.GROUPS
WAIT_S = 600.0  # how long a build waits for another build / for the app to release the database
IDLE_S = 0.5  # the build closes the database after this many seconds without use
RUNNERS: dict[str, Callable[[BuildContext], None]] = {
    "probe": run_probe_steps, "models": run_model_steps, "describe": run_describe_steps,
    "dissect": run_dissect_steps, "scores": run_scores_steps, "analyses": run_analyses_steps,
}


def _remove(progress: Progress, removed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for stage, scope in removed:
        progress.log(f"removed {stage} {scope}: no longer in the configuration")
    return removed


@dataclass
class BuildResult:
    run_id: str
    executed: list[str]
    skipped: list[str]
    fingerprints: dict[graph.StepKey, str]  # (stage, scope) -> fingerprint of every step run or kept
    removed: list[tuple[str, str]]  # (stage, scope key) of the steps deleted


def build(config: Config, progress: Progress | None = None, until: str = "analyses",
          backends: dict | None = None, wait_s: float = WAIT_S) -> BuildResult:
    """Run the pipeline for ``config`` into its results database -> what ran, was skipped, was removed.

    The configuration's values and names are validated and the probing set's metadata read before the
    database is opened, so a typo or a missing folder runs nothing and creates no database. The ``runs`` row
    ends ``done``, ``failed`` (an exception) or ``interrupted`` (Ctrl-C); a killed build leaves it
    ``running``. Readers take the last ``done`` run. A database this build created is removed again if the
    build ends without committing a step.

    ``backends``: encoders, taggers and captioners loaded by an earlier build of this process, to reuse
    (the dict is filled with what this build loads). ``wait_s``: how long to wait for another build of the
    same database to finish (``BuildRunningError`` after it) and, per opening, for a reader (the app) to
    release the file. The database is held only while a step reads or commits (released after ``IDLE_S``
    idle), so the app reads finished steps meanwhile; ``<database>.build.json`` says what is running.
    """
    if until not in GROUPS:
        raise ValueError(f"until must be one of {GROUPS}, got {until!r}")
    validate(config)
    count_entries(config.probing_set, config.resolve(config.probing_set.path))  # ProbingSetError if absent
    progress = progress or Progress()
    run_id = uuid.uuid4().hex[:12]
    db_path = config.resolve(config.run.database)
    created = not db_path.exists()
    with build_lock(db_path, wait_s, progress.log):
        progress.status = StatusWriter(db_path, run_id, config.run.name)
        try:
            try:
                with ResultsStore(db_path, wait_s=wait_s, idle_s=IDLE_S, on_wait=progress.log) as store:
                    store.record_run(run_id, config.run.name, json.dumps(config.to_dict(), sort_keys=True,
                                                                         default=str),
                                     config.config_hash(), code_version(), "running")
                    try:
                        result = _run_groups(config, store, run_id, progress, until, backends)
                    except BaseException as exc:
                        status = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
                        _end_run(store, run_id, config, status, progress)
                        progress.report(force=True, state=status, error=f"{type(exc).__name__}: {exc}"[:500])
                        raise
                    store.record_run(run_id, config.run.name, "", "", "", "done", finished=True)
                    progress.report(force=True, state="done", group="", step="")
            except BaseException as exc:
                if progress.status.status.state == "running":  # failed before the run was recorded
                    progress.report(force=True, state="failed", error=f"{type(exc).__name__}: {exc}"[:500])
                if created:
                    _remove_if_empty(db_path)
                raise
        finally:
            progress.status = None
    progress.log(f"done: {len(result.executed)} step(s) computed, {len(result.skipped)} unchanged")
    return result


def _run_groups(config: Config, store: ResultsStore, run_id: str, progress: Progress, until: str,
                backends: dict | None) -> BuildResult:
    ctx = BuildContext(config=config, store=store, run_id=run_id, progress=progress,
                       backends=backends if backends is not None else {})
    progress.log(f"building {config.run.name!r} into {store.path}")
    removed: list[tuple[str, str]] = []
    finished: list[str] = []
    for group in GROUPS[: GROUPS.index(until) + 1]:
        progress.report(force=True, group=group)
        RUNNERS[group](ctx)
        # the group ran every step the config implies for its stages: drop the rows of the others
        removed += _remove(progress, store.delete_steps_except(ctx.produced, graph.stages_of(group)))
        finished.append(group)
        progress.report(force=True, finished_groups=list(finished))
    if until == GROUPS[-1]:  # a full build also drops stages no group produces any more
        removed += _remove(progress, store.delete_steps_except(ctx.produced))
    return BuildResult(run_id, ctx.executed, ctx.skipped, dict(ctx.fingerprints), removed)


def _end_run(store: ResultsStore, run_id: str, config: Config, status: str, progress: Progress) -> None:
    """Record how a build ended; never hides the build's own error."""
    try:
        store.record_run(run_id, config.run.name, "", "", "", status, finished=True)
    except Exception as exc:  # the database itself may be what failed
        progress.log(f"could not record the run as {status}: {exc}")
    else:
        progress.log(f"build {status}: steps committed before it are kept; a rerun resumes from them")


def _remove_if_empty(db_path: Path) -> None:
    """Delete a results database (and its WAL) that holds no committed step: what a failed first build left."""
    try:
        with ResultsStore(db_path) as store:
            if store.count("steps"):
                return
    except Exception:
        return
    for path in (db_path, db_path.with_name(db_path.name + ".wal")):
        path.unlink(missing_ok=True)
