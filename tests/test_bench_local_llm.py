"""benchmarks/bench_local_llm.py: the neuron sample is fixed by its seed and spread over layers; the paired
bootstrap CI brackets the mean difference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.bench_local_llm import bootstrap_ci, sample_neurons

LAYERS = pd.DataFrame({"model": ["a", "a", "b"], "layer": ["l1", "l2", "l1"], "n_neurons": [4, 100, 100]})


def test_the_sample_is_seeded_spread_over_layers_and_never_repeats_a_neuron():
    s = sample_neurons(LAYERS, 20, seed=0)
    sizes = s.groupby(["model", "layer"]).size()
    assert sizes[("a", "l1")] == 4 and set(sizes.drop(("a", "l1"))) <= {6, 7}  # 20 // 3 each, 2 get one more
    assert not s.duplicated().any()
    assert s.equals(sample_neurons(LAYERS, 20, seed=0)) and not s.equals(sample_neurons(LAYERS, 20, seed=1))
    assert (s["neuron"] < s.merge(LAYERS, on=["model", "layer"])["n_neurons"]).all()


def test_the_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_neurons():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.1, 1, 50), rng.normal(0.1, 1, 2000)
    lo, hi = bootstrap_ci(small, seed=0)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large, seed=0)
    assert lo2 < large.mean() < hi2 and hi2 - lo2 < (hi - lo) / 3 and lo2 > 0  # 0.1 is found with 2,000 pairs
    assert np.isnan(bootstrap_ci(np.array([1.0]), seed=0)[0])


def test_answered_keeps_the_neurons_whose_two_answers_are_both_cached(app_db):
    from and_engine.stages.summaries import summary_prompts
    from and_engine.store.results import ResultsStore
    from benchmarks.bench_local_llm import answered

    with ResultsStore(app_db, read_only=True) as db:
        ext = db.read("extremes", ["model", "layer", "neuron", "topk_clip_ids", "bottomk_clip_ids"],
                      order_by=["model", "layer", "neuron"]).head(3)
        prompts = summary_prompts(ext, db.read("captions", ["clip_id", "caption"]))
        sample = ext[["model", "layer", "neuron"]]
        both_first = prompts["prompt"].iloc[:2].tolist() + prompts["prompt"].iloc[2:3].tolist()  # 1st both, 2nd top
        cache = {f"k{p}" for p in both_first}
        got = answered(db, sample, lambda p: f"k{p}", lambda keys: {k: "x" for k in keys if k in cache})
        none = answered(db, sample, lambda p: f"k{p}", lambda keys: {})
    assert got.equals(sample.iloc[:1].reset_index(drop=True)) and none.empty
