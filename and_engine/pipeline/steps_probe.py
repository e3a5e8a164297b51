"""Step 1 (clips): the probing set's validated clips and the report of skipped files."""

from __future__ import annotations

import dataclasses

from and_engine.config import stable_hash
from and_engine.pipeline.core import BuildContext, probing_set, run_step


def run_probe_steps(ctx: BuildContext, upstream: dict[str, str]) -> dict[str, str]:
    """Write ``clips`` and ``clip_issues`` -> {"clips": fingerprint}.

    The fingerprint covers the probing-set config and the files' paths, labels, folds, sizes and
    modification times, so editing or adding a clip invalidates everything downstream.
    """
    ps = probing_set(ctx)
    cfg = ctx.config.probing_set
    params = {**dataclasses.asdict(cfg), "content": stable_hash(ps.fingerprint_rows()),
              "issues": stable_hash(ps.issues.to_dict("records"))}
    if len(ps.issues):
        ctx.progress.log(f"probing set: {len(ps.issues)} file(s) skipped:")
        for r in ps.issues.itertuples():
            ctx.progress.log(f"  {r.rel_path}: {r.reason}")
    fp = run_step(ctx, "clips", {}, params, [], lambda: {"clips": ps.clips, "clip_issues": ps.issues})
    return {**upstream, "clips": fp}
