"""Step 1 (clips): the probing set's validated clips and the report of skipped files."""

from __future__ import annotations

from and_engine.config import stable_hash
from and_engine.pipeline import graph
from and_engine.pipeline.core import BuildContext, probing_set, run_stage
from and_engine.probing import ProbingSet, ProbingSetError, problems, refusals


def check_meaningful(ctx: BuildContext, ps: ProbingSet) -> None:
    """Refuse (ProbingSetError naming every reason) a probing set on which this configuration's results would be
    meaningless, before anything is computed; log the problems that only weaken some analyses as warnings."""
    cfg = ctx.config
    trains = any(m.kind in graph.TRAINED_KINDS for m in cfg.models)
    refuse, warn = refusals(problems(ps.clips, cfg.activations.top_k, cfg.probing_set.heldout_fold), trains)
    for message in warn:
        ctx.progress.log(f"warning: {message}")
    if refuse:
        raise ProbingSetError("the probing set cannot give meaningful results for this configuration:\n  - "
                              + "\n  - ".join(refuse))


def run_probe_steps(ctx: BuildContext) -> None:
    """Write ``clips`` and ``clip_issues``.

    The fingerprint covers the probing-set keys the graph declares and the files' paths, labels, folds,
    sizes and modification times, so editing or adding a clip invalidates everything downstream.
    """
    ps = probing_set(ctx)
    extra = {"content": stable_hash(ps.fingerprint_rows()), "issues": stable_hash(ps.issues.to_dict("records"))}
    if len(ps.issues):
        ctx.progress.log(f"probing set: {len(ps.issues)} file(s) skipped:")
        for r in ps.issues.itertuples():
            ctx.progress.log(f"  {r.rel_path}: {r.reason}")
    check_meaningful(ctx, ps)
    run_stage(ctx, "clips", {}, extra, lambda: {"clips": ps.clips, "clip_issues": ps.issues})
