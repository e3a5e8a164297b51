"""Benchmark the analyses at paper scale (AST: 55,346 neurons, 2,000 clips) against naive baselines.

Each line prints the optimised time, the baseline time measured in the same run and their ratio:
* interpretability (Algorithm 1): one vectorised membership gather vs a Python loop over neurons;
* OCP selection: each unique word stemmed once + ``isin`` vs stemming every C_open row;
* pruning selection over many target concepts: pre-filtering ``closed_concepts`` to the chosen
  similarity / top-3 once vs filtering the full table per concept;
* K-means on caption sentences: identical sentences clustered once with weights vs every sentence.

Run: ``.venv/bin/python benchmarks/bench_analyses.py [--neurons 55346] [--concepts 5]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing
from and_engine.analyses import clusters  # noqa: E402
from and_engine.analyses.pruning import select_neurons  # noqa: E402
from and_engine.analyses.unlearning import closed_top_n  # noqa: E402
from and_engine.text.concepts import content_stems  # noqa: E402


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def report(name: str, fast: float, slow: float) -> None:
    print(f"{name:<44} optimised {fast * 1000:9.1f} ms   baseline {slow * 1000:9.1f} ms   speed-up x{slow / fast:6.1f}")


def bench_interpretability(rng, n_neurons: int, n_clips: int = 2000, k: int = 11, top_k: int = 5) -> None:
    membership = rng.random((n_clips, k)) < 0.25
    topk = rng.integers(0, n_clips, (n_neurons, top_k))

    def loop():
        return np.array([max(sum(membership[c, j] for c in row) for j in range(k)) >= 4 for row in topk])

    fast, a = timed(lambda: clusters.interpretable(topk, membership, 4), 3)
    slow, b = timed(loop)
    assert (a == b).all()
    report(f"interpretability ({n_neurons} neurons, tau=4)", fast, slow)


def synthetic_open_concepts(rng, n_neurons: int, per_neuron: int = 10) -> pd.DataFrame:
    vocab = np.array([f"word{i}" for i in range(3000)] + ["birds", "chirping", "loud", "dogs", "water"])
    words = vocab[rng.integers(0, len(vocab), n_neurons * per_neuron)]
    return pd.DataFrame({"layer": "fc", "neuron": np.repeat(np.arange(n_neurons), per_neuron), "word": words,
                         "pos": np.where(rng.random(len(words)) < 0.5, "ADJ", "NOUN")})


def bench_ocp(rng, n_neurons: int) -> None:
    oc = synthetic_open_concepts(rng, n_neurons)
    sizes = {"fc": n_neurons}
    empty = pd.DataFrame(columns=["layer", "neuron", "method", "similarity", "rank", "concept"])

    def per_row():
        target = content_stems("chirping_birds")
        stems = oc["word"].map(lambda w: frozenset(content_stems.__wrapped__(w)))  # no memo: every row
        return sorted(set(oc.loc[stems.map(lambda s: bool(s & target)), "neuron"]))

    fast, a = timed(lambda: select_neurons("OCP", "chirping_birds", empty, oc, sizes), 3)
    slow, b = timed(per_row)
    assert a["fc"] == b
    report(f"OCP selection ({len(oc)} C_open rows)", fast, slow)


def bench_closed(rng, n_neurons: int, n_concepts: int) -> None:
    concepts = np.array([f"c{i}" for i in range(50)])
    rows = n_neurons * 2 * 5 * 5  # DB + TAB, 5 similarities, top-5
    cc = pd.DataFrame({
        "layer": "fc", "neuron": np.repeat(np.arange(n_neurons), 50),
        "method": np.tile(np.repeat(["DB", "TAB"], 25), n_neurons),
        "similarity": np.tile(np.repeat(["cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi"], 5), 2 * n_neurons),
        "rank": np.tile(np.arange(1, 6), 10 * n_neurons), "concept": concepts[rng.integers(0, 50, rows)]})
    sims, sizes, empty = {"DB": "cos3", "TAB": "wpmi"}, {"fc": n_neurons}, pd.DataFrame()

    def run(frame):
        return [select_neurons(m, c, frame, empty, sizes, similarity=sims[m])
                for m in sims for c in concepts[:n_concepts]]

    fast, a = timed(lambda: run(closed_top_n(cc, sims, 3)))
    slow, b = timed(lambda: run(cc))
    assert a == b
    report(f"DB/TAB selection, {n_concepts} concepts ({len(cc)} rows)", fast, slow)


def bench_kmeans(rng, n_sentences: int = 20000, n_unique: int = 800) -> None:
    base = rng.normal(size=(n_unique, 384))
    x = base[rng.integers(0, n_unique, n_sentences)]
    fast, _ = timed(lambda: clusters.kmeans_clusters(x, 11, 0, 2))  # includes one elbow fit (k = 2)

    def raw():  # every sentence, library-default threads
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=11, n_init=10, random_state=0).fit_predict(x)

    slow, _ = timed(raw)
    report(f"K-means k=11 ({n_sentences} sentences, {n_unique} distinct)", fast, slow)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=55346)
    ap.add_argument("--concepts", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    bench_interpretability(rng, args.neurons)
    bench_ocp(rng, args.neurons)
    bench_closed(rng, args.neurons // 4, args.concepts)
    bench_kmeans(rng)


if __name__ == "__main__":
    main()
