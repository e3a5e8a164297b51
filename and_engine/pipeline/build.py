"""The orchestrator: run every step group in order for a Config, skipping what is done.

Groups (each a ``run_<group>_steps(ctx, upstream) -> upstream`` function in ``steps_<group>.py``):
probe (clips) -> models (models, layers, activations, extremes, maps) -> describe (captions,
summaries) -> dissect (Module A, B, C) -> analyses. ``until`` stops after a group (tests, partial builds).
After each group, the steps (and rows) of its stages that the configuration no longer produces — a
model, layer or option that was removed — are deleted, so no stale result survives a config change.
"""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass

from and_engine.config import Config
from and_engine.pipeline.core import BuildContext, Progress, code_version
from and_engine.store.results import ResultsStore

GROUPS = ("probe", "models", "describe", "dissect", "analyses")
GROUP_STAGES = {
    "probe": ("clips",),
    "models": ("model", "activations", "extremes", "activation_maps"),
    "describe": ("captions", "summaries"),
    "dissect": ("module_a", "module_a_icl", "module_b", "adjective_checks", "module_c"),
    "analyses": ("clusters", "lastlayer", "pruning", "feature_importance", "adjectives", "interpretability",
                 "acoustic_check"),
}


def _remove(store: ResultsStore, progress: Progress, removed: list[tuple[str, str]]) -> None:
    for stage, scope in removed:
        progress.log(f"removed {stage} {scope}: no longer in the configuration")


@dataclass
class BuildResult:
    run_id: str
    executed: list[str]
    skipped: list[str]
    fingerprints: dict[str, str]


def _group_runner(group: str):
    module = importlib.import_module(f"and_engine.pipeline.steps_{group}")
    return getattr(module, f"run_{group}_steps")


def build(config: Config, progress: Progress | None = None, until: str = "analyses") -> BuildResult:
    """Run the pipeline for ``config`` into its results database -> what ran and what was skipped."""
    if until not in GROUPS:
        raise ValueError(f"until must be one of {GROUPS}, got {until!r}")
    progress = progress or Progress()
    run_id = uuid.uuid4().hex[:12]
    db_path = config.resolve(config.run.database)
    with ResultsStore(db_path) as store:
        store.record_run(run_id, config.run.name, json.dumps(config.to_dict(), sort_keys=True, default=str),
                         config.config_hash(), code_version(), "running")
        ctx = BuildContext(config=config, store=store, run_id=run_id, progress=progress)
        progress.log(f"building {config.run.name!r} into {db_path}")
        upstream: dict[str, str] = {}
        for group in GROUPS[: GROUPS.index(until) + 1]:
            upstream = _group_runner(group)(ctx, upstream)
            # the group ran every step the config implies for its stages: drop the rows of the others
            _remove(store, progress, store.delete_steps_except(ctx.produced, GROUP_STAGES[group]))
        if until == GROUPS[-1]:  # a full build also drops stages no group produces any more
            _remove(store, progress, store.delete_steps_except(ctx.produced))
        store.record_run(run_id, config.run.name, "", "", "", "done", finished=True)
        progress.log(f"done: {len(ctx.executed)} step(s) computed, {len(ctx.skipped)} unchanged")
        return BuildResult(run_id, ctx.executed, ctx.skipped, upstream)
