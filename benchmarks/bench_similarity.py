"""Benchmark: the five vectorised similarity functions vs per-neuron loops, one paper-size layer.

One layer of 3,072 neurons x 2,000 clips x 50 concepts (random activations, DB-style P), two baselines
from benchmarks/_similarity_reference.py, both measured in the same run:

* per-call loop (the paper's code): every neuron scored by its own call of the similarity function on
  one activation column, so each call recomputes what the function derives from P (softmax(a P),
  normalised / cubed P columns, the concept rankings of its top clips); the wpmi / soft_wpmi normaliser
  over all neurons is applied after the loop, so the result is correct (the paper's code was not).
* fair loop: one neuron per iteration too, but everything shared across neurons computed once.

The loops run on an evenly spaced sample of neurons, twice (a quarter of the sample, then all of it):
time = fixed cost + per-neuron cost x neurons, fitted on the two runs and extrapolated to the layer.
Before timing, each loop's scores on the sample are checked against the vectorised ones (wpmi /
soft_wpmi: the sample scored as its own layer, and the fair loop on the whole layer) to 1e-9, cos / cos3
(float32 products) to 1e-6; their float32 scores are compared with ``exact=True`` (float64) on the whole
layer: max |difference| and how many neurons' top-5 concepts change (the "exact" rows time float64 products).
Everything runs on --threads BLAS threads (default 1, as a per-neuron loop uses); each time is the best of
--repeats, as process CPU time (steady on a shared machine) and as wall clock (shown with the load
average: other processes on the machine inflate it).

    .venv/bin/python benchmarks/bench_similarity.py [--neurons 3072] [--clips 2000] [--concepts 50] [--sample 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import softmax
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _similarity_reference import LOOPS, PMI_LAMBDA, per_call_loop  # noqa: E402

from and_engine.stages.similarity import SIMILARITIES, score_all  # noqa: E402

TOLERANCE = {"cos": 1e-6, "cos3": 1e-6}  # float32 products (exact=True: 1e-9); the others: 1e-9


def _best_of(fn, repeats: int) -> np.ndarray:
    """-> [CPU seconds, wall seconds], each the best of ``repeats`` runs."""
    best = np.full(2, np.inf)
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        best = np.minimum(best, [time.process_time() - c0, time.perf_counter() - w0])
    return best


def _extrapolated(loop, u, P, sample: np.ndarray, repeats: int) -> np.ndarray:
    """[CPU, wall] seconds the loop would take on all u.shape[1] neurons: fixed + per-neuron cost, fitted
    on two sample sizes."""
    small, full = u[:, sample[::4]], u[:, sample]
    t_small, t_full = _best_of(lambda: loop(small, P), repeats), _best_of(lambda: loop(full, P), repeats)
    per_neuron = np.maximum(t_full - t_small, 0.0) / (full.shape[1] - small.shape[1])
    fixed = np.maximum(t_full - per_neuron * full.shape[1], 0.0)
    return fixed + per_neuron * u.shape[1]


def _table(title: str, rows: dict[str, np.ndarray], col: int) -> None:
    """rows: name -> (vectorised, per-call loop, fair loop) x [CPU, wall]; print column ``col``."""
    print(f"\n{title}\n{'':<13} {'vectorised s':>12} {'per-call loop s':>16} {'ratio':>7} "
          f"{'fair loop s':>12} {'ratio':>7}")
    for name, (tv, tc, tf) in rows.items():
        tv, tc, tf = tv[col], tc[col], tf[col]
        print(f"{name:<13} {tv:>12.3f} {tc:>16.2f} {tc / tv:>6.1f}x {tf:>12.2f} {tf / tv:>6.1f}x")


def _check(name: str, u, P, sample: np.ndarray) -> float:
    """Max |loop - vectorised| over the sampled neurons, both baselines; raises past TOLERANCE."""
    fn, us = SIMILARITIES[name], u[:, sample]
    if name in PMI_LAMBDA:  # the normaliser spans the layer: sample as its own layer, fair loop on all
        pairs = [(per_call_loop(name, us, P), fn(us, P)), (LOOPS[name](us, P), fn(us, P)),
                 (LOOPS[name](u, P), fn(u, P))]
    else:
        layer = fn(u, P)[sample]
        pairs = [(per_call_loop(name, us, P), layer), (LOOPS[name](us, P), layer)]
    worst = max(float(np.abs(a - b).max()) for a, b in pairs)
    if worst > TOLERANCE.get(name, 1e-9):
        raise AssertionError(f"{name}: loop and vectorised scores differ by {worst:.3g}")
    return worst


def _float32_check(u, P) -> str:
    """cos / cos3, float32 vs float64 products on the whole layer: max |diff| and neurons whose top-5
    concepts differ (raises if any does while the float64 scores have no tie within 1e-6 there)."""
    notes = []
    for name in ("cos", "cos3"):
        fast, exact = SIMILARITIES[name](u, P), SIMILARITIES[name](u, P, exact=True)
        top5 = [np.argsort(-s, axis=1, kind="stable")[:, :5] for s in (fast, exact)]
        moved = np.nonzero((top5[0] != top5[1]).any(axis=1))[0]
        gaps = -np.diff(-np.sort(-exact[moved], axis=1)[:, :6], axis=1)
        if moved.size and gaps.min(axis=1).max() > 1e-6:
            raise AssertionError(f"{name}: float32 products change the top-5 of a neuron without a near tie")
        notes.append(f"{name} max |diff| {np.abs(fast - exact).max():.1e}, top-5 changed for {moved.size} of "
                     f"{len(fast)} neurons")
    return "; ".join(notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=3072)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--concepts", type=int, default=50)
    ap.add_argument("--sample", type=int, default=128, help="neurons the loops are timed on (>= 8)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = ap.parse_args()
    with threadpool_limits(args.threads):
        run(args)


def run(args) -> None:
    rng = np.random.default_rng(0)
    u = rng.standard_normal((args.clips, args.neurons))
    d, c = rng.standard_normal((args.clips, 32)), rng.standard_normal((args.concepts, 32))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    P = softmax(100 * d @ c.T, axis=1)
    sample = np.unique(np.linspace(0, args.neurons - 1, max(8, args.sample)).astype(int))
    print(f"layer: {args.neurons} neurons x {args.clips} clips x {args.concepts} concepts; loops timed on "
          f"{len(sample)} and {len(sample[::4])} evenly spaced neurons, extrapolated to {args.neurons}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    worst = {name: _check(name, u, P, sample) for name in SIMILARITIES}
    print("loops agree with the vectorised scores on the sample: max |diff| "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    print("float32 vs float64 products: " + _float32_check(u, P))
    rows = {}
    for name, fn in SIMILARITIES.items():
        rows[name] = (_best_of(lambda fn=fn: fn(u, P), args.repeats),
                      _extrapolated(lambda a, b, name=name: per_call_loop(name, a, b), u, P, sample, args.repeats),
                      _extrapolated(LOOPS[name], u, P, sample, args.repeats))
    rows["all five"] = tuple(sum(r[i] for r in rows.values()) for i in range(3))
    shared = _best_of(lambda: score_all(list(SIMILARITIES), u, P), args.repeats)
    rows["score_all"] = (shared, *rows["all five"][1:])
    for name in ("cos", "cos3"):  # float64 products, for comparison
        rows[f"{name} exact"] = (_best_of(lambda fn=SIMILARITIES[name]: fn(u, P, exact=True), args.repeats),
                                 *rows[name][1:])
    _table(f"CPU time, {args.threads} thread(s)", rows, 0)
    _table(f"wall clock (same runs; load average now {os.getloadavg()[0]:.1f})", rows, 1)
    print("\nall five: each function on its own; score_all: all five in one call sharing validation and the "
          "top-clip order, as Module A calls them (the loops' time is the same five-function total)")


if __name__ == "__main__":
    main()
