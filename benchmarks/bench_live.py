"""Benchmark: the live views' model work (Effect on the output, the Pruning page) after vs before, same run.

On a built database and its checkpoint cache (the demo: ``data/build/demo.duckdb``), CPU, torch's default
threads (as the app's server), for every model the browser benchmark hits:

* ``effect``  ``effect.neuron_effect`` of the neurons ``bench_browser.visits`` opens with the effect on
  (``fresh_neurons(db, runs + 1, seed=1)``, first of each pair), plus one neuron of the middle and of the last
  prunable layer of each model;
* ``pruning``  ``live.live_prune`` as the Pruning page opens (first prunable model, first concept, OCP);
* ``load``  ``live.load_pruning_target`` (the model, held-out clips, features and the unpruned pass: once per
  server).

``after`` is this checkout's engine as ``live.load_pruning_target`` builds it; ``before`` the engine of
``--before-rev`` (``git show REV:and_engine/analyses/pruning_engine.py``) built as that revision's live.py built
it (torch's threads, ``auto_workers``), on the same model without the stages this branch gives AST. Modes
alternate per round; prints medians, after / before ratios and the largest difference of the two modes'
results (per-class mean logit changes). ``threads-only`` is this checkout's engine without stored stage inputs
(``cache_mb=0``) and without AST's stages: what the torch-threads change alone gives.

    HF_HUB_OFFLINE=1 python benchmarks/bench_live.py --db data/build/demo.duckdb --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from and_engine.explorer import aggregates, effect, live, queries  # noqa: E402
from and_engine.store.results import ResultsStore  # noqa: E402

MODES = ["before", "threads-only", "after"]


def before_engine(rev: str):
    """The PruningEngine class of revision ``rev``."""
    src = subprocess.run(["git", "show", f"{rev}:and_engine/analyses/pruning_engine.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "before_pruning_engine.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("before_pruning_engine", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load(mode: str, cfg, model: str, clips, saes, old):
    """A PruningTarget whose engine is this checkout's (after), this checkout's without stored stage inputs and
    AST stages (threads-only), or ``old``'s (before), built as each revision's live.py."""
    if mode == "after":
        return live.load_pruning_target(cfg, model, clips, saes)
    import and_engine.analyses.pruning_engine as new
    from and_engine.models import ast as ast_mod

    saved = new.PruningEngine, new.auto_workers, ast_mod.ast_stages
    if mode == "threads-only":
        engine = saved[0]
        new.PruningEngine = lambda m, w, bs, prec, workers, threads: engine(m, w, bs, prec, workers, threads, 0)
    else:
        new.PruningEngine = lambda m, w, bs, prec, workers, _threads=0: old.PruningEngine(m, w, bs, prec, workers)
        new.auto_workers = lambda device, _threads=0: old.auto_workers(device)
    ast_mod.ast_stages = lambda *_a: None  # the revision before gave AST no stages
    try:
        return live.load_pruning_target(cfg, model, clips, saes)
    finally:
        new.PruningEngine, new.auto_workers, ast_mod.ast_stages = saved


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def one_round(mode, db_path, cfg, clips, models, saes, old, neurons, concept_model, times, results) -> None:
    """Load every model's target in ``mode``, then time each effect and the Pruning page's request."""
    top_n = cfg.analyses.closed_top_n_for_pruning
    with ResultsStore(db_path, read_only=True) as db:
        targets = {}
        for m in models:
            t, targets[m] = timed(lambda m=m: load(mode, cfg, m, clips, saes[m], old))
            times.setdefault(("load", m, mode), []).append(t)
        tg = targets[concept_model]
        concept = tg.concepts[0]
        closed, opened = aggregates.pruning_candidates(db, concept_model, concept, top_n)
        sizes = live.pruning_layers(tg, queries.layers(db, concept_model))
    for m, layer, n in neurons:
        t, eff = timed(lambda m=m, layer=layer, n=n: effect.neuron_effect(targets[m], layer, n))
        key = ("effect", f"{m} {layer} {n}")
        times.setdefault((*key, mode), []).append(t)
        results[(*key, mode)] = eff.per_class["mean_change"].to_numpy()
    t, res = timed(lambda: live.live_prune(tg, "OCP", concept, closed, opened, sizes, seed=cfg.run.seed, top_n=top_n))
    key = ("pruning", f"{concept_model} {concept} OCP")
    times.setdefault((*key, mode), []).append(t)
    results[(*key, mode)] = res.per_class["delta_logit"].to_numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=str(ROOT / "data/build/demo.duckdb"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3, help="bench_browser's --runs (which effect neurons it opens)")
    ap.add_argument("--before-rev", default="dbf29bb")
    args = ap.parse_args()
    from bench_browser import fresh_neurons

    old = before_engine(args.before_rev)
    with ResultsStore(Path(args.db), read_only=True) as db:
        cfg, clips = queries.run_config(db), queries.clips(db).reset_index()
        prunable = aggregates.prunable_models(db)
        neurons = [p[0] for p in fresh_neurons(Path(args.db), args.runs + 1, seed=1)]
        models = sorted({m for m, _, _ in neurons} | set(prunable))
        saes = {m: aggregates.sae_checkpoints(db, m) for m in models}
        for m in models:
            rows = queries.layers(db, m)
            rows = rows[rows["kind"] != "sae"]["layer"].tolist()
            neurons += [(m, rows[len(rows) // 2], 1), (m, rows[-1], 2)]
        concept_model = prunable[0]
    print(f"torch threads {__import__('torch').get_num_threads()}, load average {os.getloadavg()}", flush=True)
    times: dict[tuple, list[float]] = {}
    results: dict[tuple, np.ndarray] = {}
    for r in range(args.rounds):
        for mode in MODES[r % 3:] + MODES[:r % 3]:
            one_round(mode, Path(args.db), cfg, clips, models, saes, old, neurons, concept_model, times, results)
    print(f"median of {args.rounds} rounds (seconds); load average after {os.getloadavg()}")
    print(f"{'what':8} {'request':44} {'before':>7} {'threads':>7} {'after':>7} {'thr/bef':>7} {'aft/bef':>7}  "
          "max |after - before|")
    for what, name in dict.fromkeys((k[0], k[1]) for k in times):
        b, t, a = (statistics.median(times[(what, name, mode)]) for mode in MODES)
        diff = ("" if what == "load" else
                f"{np.nanmax(np.abs(results[(what, name, 'after')] - results[(what, name, 'before')])):.2e}")
        print(f"{what:8} {name:44} {b:7.3f} {t:7.3f} {a:7.3f} {t / b:7.2f} {a / b:7.2f}  {diff}")


if __name__ == "__main__":
    main()
