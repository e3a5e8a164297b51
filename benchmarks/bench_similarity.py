"""Benchmark: the five vectorised similarity functions vs a per-neuron loop, one paper-size layer.

One layer of 3,072 neurons x 2,000 clips x 50 concepts (random data, DB-style P). The vectorised
functions score every neuron; the per-neuron loop (tests/_similarity_reference.py, the shape of the
paper's code: one neuron per iteration, concepts vectorised) runs on a sample of neurons and is
extrapolated linearly to the layer (its per-neuron cost does not depend on the other neurons; the
wpmi normaliser, computed once, is negligible). Prints seconds and the speed-up per function.

    .venv/bin/python benchmarks/bench_similarity.py [--neurons 3072] [--clips 2000] [--concepts 50] [--sample 128]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import softmax

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _similarity_reference import LOOPS  # noqa: E402

from and_engine.stages.similarity import SIMILARITIES, score_all  # noqa: E402


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=3072)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--concepts", type=int, default=50)
    ap.add_argument("--sample", type=int, default=128, help="neurons the per-neuron loop runs on")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    u = rng.standard_normal((args.clips, args.neurons))
    d, c = rng.standard_normal((args.clips, 32)), rng.standard_normal((args.concepts, 32))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    P = softmax(100 * d @ c.T, axis=1)
    sample = u[:, : args.sample]
    print(f"layer: {args.neurons} neurons x {args.clips} clips x {args.concepts} concepts; "
          f"loop timed on {args.sample} neurons and extrapolated x{args.neurons / args.sample:.1f}")
    print(f"{'function':<13} {'vectorised s':>12} {'loop s (extrap.)':>17} {'speed-up':>9}")
    total_v = total_l = 0.0
    for name, fn in SIMILARITIES.items():
        tv = _best_of(lambda fn=fn: fn(u, P), args.repeats)
        tl = _best_of(lambda name=name: LOOPS[name](sample, P), args.repeats) * args.neurons / args.sample
        total_v, total_l = total_v + tv, total_l + tl
        print(f"{name:<13} {tv:>12.3f} {tl:>17.2f} {tl / tv:>8.1f}x")
    print(f"{'all five':<13} {total_v:>12.3f} {total_l:>17.2f} {total_l / total_v:>8.1f}x")
    shared = _best_of(lambda: score_all(list(SIMILARITIES), u, P), args.repeats)
    print(f"{'score_all':<13} {shared:>12.3f} {total_l:>17.2f} {total_l / shared:>8.1f}x"
          "  (all five sharing validation and the top-clip order, as Module A calls them)")


if __name__ == "__main__":
    main()
