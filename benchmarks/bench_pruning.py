"""Benchmark: the pruning engine vs one forward pass per selection, on a built database, in the same run.

The selections are the build's own: Table 4 (every method x held-out class) and Figure 4 (every distinct
feature-importance selection) of each trained variant, read from a finished results database and its
checkpoint cache. Modes, run interleaved on the same random subset of selections (``--limit`` per model,
``--rounds`` rounds, the order of the modes rotated every round), all on one torch thread:

* ``before``  what the build did before the engine: the unpruned pass, then per selection ``pruned`` +
  ``model.logits`` in batches of ``batch_size`` clips, the front end (log-mel / AST filterbank) recomputed
  in every pass;
* ``features-once``  the engine (its unpruned pass included) with the front end once and no stage reuse
  (every pass from the input);
* ``engine``  + the stages before each selection's first pruned layer run once per chunk (YAMNet);
* ``engine-2threads``  + two worker threads (the second core).

Every mode's logits are checked equal to the first mode's of the round (bit for bit on the CPU). Prints
wall and process-CPU seconds per selection (median over rounds) and each mode's ratio to ``before``, per
model: on a shared machine the CPU ratio of the one-thread modes is the steadier measure of work saved;
the two-thread mode can only gain wall time when a second core is free.

    python benchmarks/bench_pruning.py --config configs/demo.toml --limit 24 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("before", "features-once", "engine", "engine-2threads")


def _inputs(config, db, model: str):
    """(TargetModel, held-out waveforms, labels, [selections]) of one trained variant, as the build makes them."""
    from and_engine.analyses.feature_importance import importance_selections, rank_pool
    from and_engine.analyses.unlearning import candidate_layers, heldout_labels, table4_selections
    from and_engine.models.registry import load_target_model
    from and_engine.probing import open_probing_set

    info = db.read("models", model=model).iloc[0]
    classes = [str(c) for c in info["class_names"]]
    layers = db.read("layers", model=model, order_by=["layer_index"])
    sizes = candidate_layers(layers, config.analyses.prune_classifier)
    ps = open_probing_set(config.probing_set, config.resolve(config.probing_set.path))
    clip_ids, labels = heldout_labels(ps.clips, classes, config.probing_set.heldout_fold)

    def no_training(_sr):
        raise SystemExit(f"no cached checkpoint of {model} under {config.run.cache_dir}: build first")

    target, _ = load_target_model(next(m for m in config.models if m.name == model), config, ps, no_training)
    steps = db.read("steps", ["params_json"], stage="pruning", scope=f"model={model}")
    sims = json.loads(steps["params_json"].iloc[0])["similarities"] if len(steps) else {}
    chosen = table4_selections(labels, classes, db.read("closed_concepts", model=model),
                               db.read("open_concepts", model=model), sizes, sims, ["OCP", *sims, "random"],
                               config.analyses.closed_top_n_for_pruning, config.run.seed)
    opened = db.read("open_concepts", model=model)
    _, distinct = importance_selections(rank_pool(db.read("pos_counts", model=model), sizes), opened, model,
                                        config.analyses.prune_percents, config.analyses.seeds,
                                        config.analyses.basic_adjectives)
    sels = [s for _, _, s in chosen] + list(distinct.values())
    waves = ps.load_waveforms(target.sample_rate, config.probing_set.clip_seconds, clip_ids=clip_ids.tolist())
    return target, waves, labels, [s for s in sels if any(len(v) for v in s.values())]


def _before(target, waves, sels, batch_size):
    """The unpruned pass once, then one pass per selection (what the engine also does: like for like)."""
    from and_engine.models.base import pruned

    def passes():
        return np.concatenate([target.logits(waves[i:i + batch_size], batch_size)
                               for i in range(0, len(waves), batch_size)]).astype(np.float64)

    out = [passes()]
    for sel in sels:
        with pruned(target, sel):
            out.append(passes())
    return out[1:]


def _run(mode: str, target, waves, sels, batch_size: int) -> tuple[float, float, list[np.ndarray]]:
    """-> (wall seconds, process CPU seconds, logits per selection)."""
    from and_engine.analyses.pruning_engine import PruningEngine

    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "before":
        out = _before(target, waves, sels, batch_size)
    else:
        stages = target.stages
        if mode == "features-once":
            target.stages = None  # one stage: every pass from the input
        try:
            engine = PruningEngine(target, waves, batch_size, workers=2 if mode == "engine-2threads" else 1)
            out = engine.logits(sels)
        finally:
            target.stages = stages
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.toml")
    ap.add_argument("--database", help="results database (default: the config's)")
    ap.add_argument("--cache-dir", help="checkpoint cache (default: the config's)")
    ap.add_argument("--probing-path", help="probing set folder (default: the config's)")
    ap.add_argument("--models", nargs="*", help="trained variants (default: every one in the database)")
    ap.add_argument("--limit", type=int, default=24, help="selections per model per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch

    from and_engine.config import load_config
    from and_engine.store.results import ResultsStore

    torch.set_num_threads(1)
    config = load_config(args.config)
    run = dataclasses.replace(config.run, **{k: v for k, v in (("database", args.database),
                                                                ("cache_dir", args.cache_dir)) if v})
    ps_cfg = dataclasses.replace(config.probing_set, path=args.probing_path or config.probing_set.path)
    config = dataclasses.replace(config, run=run, probing_set=ps_cfg)
    batch_size = config.activations.batch_size
    with ResultsStore(config.resolve(config.run.database), read_only=True) as db:
        trained = db.read("models", ["model", "heldout_accuracy"])
        names = args.models or trained.loc[trained["heldout_accuracy"].notna(), "model"].tolist()
        loaded = {m: _inputs(config, db, m) for m in names}
    rng = np.random.default_rng(0)
    print(f"batch size {batch_size}, 1 torch thread, {args.rounds} rounds x {args.limit} selections per model; "
          "wall s and CPU s per selection (median over rounds), ratio = before / mode (wall; CPU in brackets)")
    for name, (target, waves, _labels, sels) in loaded.items():
        wall, cpu = {m: [] for m in MODES}, {m: [] for m in MODES}
        for r in range(args.rounds):
            pick = [sels[i] for i in rng.choice(len(sels), min(args.limit, len(sels)), replace=False)]
            ref = None
            for mode in MODES[r % len(MODES):] + MODES[: r % len(MODES)]:
                seconds, cpu_s, out = _run(mode, target, waves, pick, batch_size)
                wall[mode].append(seconds / len(pick))
                cpu[mode].append(cpu_s / len(pick))
                if ref is None:
                    ref = out
                worst = max(float(np.abs(a - b).max()) for a, b in zip(ref, out, strict=True))
                if worst > 1e-4:
                    raise SystemExit(f"{name} {mode}: logits differ by {worst}")
        w = {m: float(np.median(v)) for m, v in wall.items()}
        c = {m: float(np.median(v)) for m, v in cpu.items()}
        print(f"\n{name}: {len(waves)} held-out clips, {len(sels)} selections (Table 4 + Figure 4, non-empty)")
        for m in MODES:
            print(f"  {m:<16} wall {w[m]:7.3f} s  CPU {c[m]:7.3f} s   x{w['before'] / w[m]:5.2f} "
                  f"(CPU x{c['before'] / c[m]:5.2f})", flush=True)


if __name__ == "__main__":
    main()
