"""Benchmark: the embedding / audio-text scorers on a paper-scale layer, vs a per-explanation loop.

A synthetic layer of ``--neurons`` (3,072, AST-base's widest) x ``--clips`` (2,000, ESC-50) with 15
explanation sources per neuron (3 distinct texts each, as summaries share points), 384-d text and 521-d
audio-text embeddings: the stage's vectorised path (scoring sets, similarities at the sets, AUC and Pearson r,
summary) timed per layer, against a baseline that scores each explanation alone (sklearn ``roc_auc_score``,
scipy ``pearsonr``) on a sample and extrapolated. Then MiniLM's throughput on distinct summary points (what a
build that did not just run Module B must embed) and the paper-scale estimate (55,346 neurons).

    python benchmarks/bench_scores.py
    python benchmarks/bench_scores.py --neurons 512 --clips 251 --baseline 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAPER_NEURONS = 55_346
SOURCES = 15


def _layer(n: int, N: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(N, n)).astype(np.float32)
    u[:, ::4] = np.maximum(u[:, ::4] - 1.5, 0)  # a quarter of the neurons sparse (ReLU-like)
    rows = np.repeat(np.arange(n), SOURCES)
    idx = np.repeat(np.arange(n) * 3, SOURCES) + np.tile(np.arange(SOURCES) % 3, n)  # 3 distinct texts / neuron
    return u, rows, idx, rng


def vectorised(u, rows, idx, rng, dims=(384, 521)) -> tuple[float, dict]:
    """The stage's path for both scorers -> (seconds, per-part seconds)."""
    from and_engine.stages.scores import score_rows, separation, similarity_at_sets, summarise
    from and_engine.stages.scoring_sets import draw_scoring_sets

    N, n = u.shape
    parts = {}
    t0 = time.perf_counter()
    sets = draw_scoring_sets(u, 5, rng=np.random.default_rng(1))
    parts["scoring sets"] = time.perf_counter() - t0
    expl = pd.DataFrame({"model": "m", "layer": "l", "neuron": rows, "source": "S_h"})
    frames = []
    for scorer, d in zip(("embedding", "audio-text"), dims):
        text, clips = rng.normal(size=(3 * n, d)), rng.normal(size=(N, d))
        t = time.perf_counter()
        sim = similarity_at_sets(text, idx, rows, clips, sets)
        parts[f"{scorer} similarity"] = time.perf_counter() - t
        t = time.perf_counter()
        a, r = separation(sim, rows, sets, u)
        parts[f"{scorer} AUC + r"] = time.perf_counter() - t
        frames.append(score_rows(expl, scorer, a, r, None, sets.valid[rows].sum(axis=1)))
    t = time.perf_counter()
    summarise(pd.concat(frames, ignore_index=True))
    sets.frame("m", "l")
    parts["rows + summary"] = time.perf_counter() - t
    return time.perf_counter() - t0, parts


def loop(u, rows, idx, rng, k: int, dims=(384, 521)) -> float:
    """Per-explanation baseline on the first ``k`` explanations -> seconds per explanation (both scorers)."""
    from scipy.stats import pearsonr
    from sklearn.metrics import roc_auc_score

    from and_engine.stages.scoring_sets import draw_scoring_sets

    N, n = u.shape
    sets = draw_scoring_sets(u, 5, rng=np.random.default_rng(1))
    t0 = time.perf_counter()
    for d in dims:
        text, clips = rng.normal(size=(3 * n, d)), rng.normal(size=(N, d))
        for e in range(k):
            j = rows[e]
            ok = sets.valid[j]
            ids, act = sets.clip_ids[j][ok], sets.activating[j][ok]
            s = clips[ids] @ text[idx[e]]
            if act.any() and (~act).any():
                roc_auc_score(act, s)
            if np.ptp(u[ids, j]) > 0:
                pearsonr(s, u[ids, j])
    return (time.perf_counter() - t0) / k


def minilm_points_per_s(n: int) -> float:
    """MiniLM on ``n`` distinct summary-like points -> points per second."""
    from and_engine.backends.registry import make

    enc = make("text_encoder", "minilm")
    enc.encode(["warm up"])
    words = "loud quiet deep shrill steady brief repetitive noisy tonal dog rain engine bell bird water".split()
    rng = np.random.default_rng(0)
    pts = [f"{' '.join(rng.choice(words, 3))} can be heard in three of the five clips, point {i}." for i in range(n)]
    t0 = time.perf_counter()
    enc.encode(pts)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--neurons", type=int, default=3072)
    p.add_argument("--clips", type=int, default=2000)
    p.add_argument("--baseline", type=int, default=600, help="explanations the per-explanation loop scores")
    p.add_argument("--points", type=int, default=400, help="distinct points MiniLM embeds (0 = skip)")
    args = p.parse_args(argv)
    u, rows, idx, rng = _layer(args.neurons, args.clips)
    seconds, parts = vectorised(u, rows, idx, rng)
    per_expl = loop(u, rows, idx, rng, min(args.baseline, len(rows)))
    print(f"layer {args.neurons} neurons x {args.clips} clips x {SOURCES} sources = {len(rows):,} explanations, "
          "2 scorers")
    print(f"vectorised: {seconds:.1f} s per layer (" + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()) + ")")
    print(f"per-explanation loop: {per_expl * len(rows):.1f} s per layer (extrapolated from {args.baseline}) "
          f"-> {per_expl * len(rows) / seconds:.1f}x")
    per_neuron = seconds / args.neurons
    print(f"paper scale ({PAPER_NEURONS:,} neurons x {args.clips} clips), scoring without text encoding: "
          f"{per_neuron * PAPER_NEURONS / 60:.1f} min")
    if args.points:
        pps = minilm_points_per_s(args.points)
        new = 6 * PAPER_NEURONS  # ~5 distinct S_h points + the adjective list per neuron, when not memoised
        print(f"MiniLM: {pps:.0f} distinct points/s; a build that has not just embedded Module B's points "
              f"embeds ~{new:,} texts at paper scale: {new / pps / 60:.0f} min more on this CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
