"""The scores and ground-truth stages in a real (tiny) build: every explanation scored, the LLM scorers through the
cache, the graph's conditions, and bad settings named."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from and_engine.config import ConfigError
from and_engine.pipeline import graph
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.store.results import ResultsStore


def test_every_explanation_of_the_tiny_build_has_its_embedding_and_audio_text_scores(tiny_build):
    _, config, _ = tiny_build
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        per = store.query_df('SELECT e.model, e.layer, count(*) AS n, count(s.auc) AS with_auc '
                             'FROM explanations e JOIN explanation_scores s USING (model, layer, neuron, source) '
                             'WHERE s.scorer = ? GROUP BY ALL', ["embedding"])
        n_expl = store.count("explanations")
        neurons = per[~per["layer"].str.endswith(".sae")]
        assert per["n"].sum() == n_expl and neurons["with_auc"].sum() > 0.9 * neurons["n"].sum()
        # an SAE latent active on no clip beyond its top-K gives its scoring clips one value: no AUC, and only such
        acts = store.read_activations("yamnet", "block3.pointwise.sae")
        sparse = set(np.flatnonzero((acts > 0).sum(axis=0) <= config.activations.top_k).tolist())
        unscored = store.query_df("SELECT DISTINCT neuron FROM explanation_scores WHERE layer = ? AND scorer = ? "
                                  "AND auc IS NULL", ["block3.pointwise.sae", "embedding"])["neuron"]
        assert 0 < len(unscored) and set(unscored.tolist()) <= sparse
        assert store.count("explanation_scores", scorer="audio-text") == n_expl
        layers = store.read("layers")
        assert store.count("scoring_sets") == int(layers["n_neurons"].sum())
        # the LLM scorers read a seeded sample of 8 neurons per layer, every source, through the llm_cache
        llm = store.query_df("SELECT layer, model, count(DISTINCT neuron) AS n FROM explanation_scores "
                             "WHERE scorer = ? GROUP BY ALL", ["detection"])
        assert (llm["n"] == 8).all() and len(llm) == len(layers[layers["n_neurons"] > 0])
        assert store.query_df("SELECT count(*) AS n FROM llm_cache WHERE prompt LIKE 'A neuron of an audio%'")["n"][0]
        summary = store.read("score_summary", scorer="embedding", metric="auc")
        assert set(summary["source"]) >= {"S_h", "S_h^c", "shuffled", "DB/cos", "TAB/cos", "ICL"}
        assert store.count("caption_truth") == store.count("clips")
        assert store.count("neuron_truth") == int(layers["n_neurons"].sum())


def test_the_llm_scorers_exist_only_when_asked_and_scores_read_icl_only_when_it_runs():
    cfg = graph.Config()
    scope = {"model": "m", "layer": "l"}
    llm = graph.STAGE["llm_scores"]
    assert not graph.exists(llm, cfg, scope)
    on = dataclasses.replace(cfg, scores=dataclasses.replace(cfg.scores, llm_scorers=("simulation",)))
    assert graph.exists(llm, on, scope)
    scores = graph.STAGE["scores"]
    assert "module_a_icl" in graph.upstream_stages(scores, cfg, scope)
    off = dataclasses.replace(cfg, module_a=dataclasses.replace(cfg.module_a, icl=False))
    assert "module_a_icl" not in graph.upstream_stages(scores, off, scope)


def test_an_unknown_scorer_stops_the_build_before_it_runs_naming_the_key_and_the_known_scorers(tiny_build, tmp_path):
    _, config, _ = tiny_build
    db = tmp_path / "copy.duckdb"
    shutil.copy(config.resolve(config.run.database), db)
    bad = dataclasses.replace(config, run=dataclasses.replace(config.run, database=str(db)),
                              scores=dataclasses.replace(config.scores, scorers=("embedding", "vibes")))
    known = r"scores.scorers: unknown scorer\(s\) \[.vibes.\]; known: embedding, audio-text"
    before = db.stat().st_mtime_ns
    with pytest.raises(ConfigError, match=known):
        build(bad, Progress(quiet=True))
    assert db.stat().st_mtime_ns == before
