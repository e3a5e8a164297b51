"""run_analyses_steps on a tiny configuration: every analysis table written, a rerun skips everything."""

from __future__ import annotations

import types
from pathlib import Path

import pandas as pd
import pytest
from _analyses_fixtures import CLASSES, seed_store, tiny_inputs, tiny_model
from fakes import WordVectorEncoder

from and_engine.config import AnalysesConfig, Config, ModelConfig, RunConfig
from and_engine.pipeline.core import BuildContext, Progress
from and_engine.pipeline.steps_analyses import run_analyses_steps
from and_engine.probing import ProbingSet
from and_engine.store.results import ResultsStore

ANALYSIS_TABLES = ["lastlayer_accuracy", "pruning_summary", "pruning_per_class", "feature_importance",
                   "adjective_stats", "top_adjectives", "cluster_elbow", "caption_sentences", "cluster_words",
                   "interpretability", "acoustic_check"]


def make_ctx(store: ResultsStore, monkeypatch, names=("tiny",)) -> BuildContext:
    """A build context whose probing set, waveforms, encoder and target model are the tiny fixtures."""
    config = Config(run=RunConfig(name="t", database=str(store.path)),
                    models=tuple(ModelConfig(name=n, kind="tiny") for n in names),
                    analyses=AnalysesConfig(n_clusters=3, elbow_max_k=4, prune_percents=(25.0, 50.0), seeds=(0, 1)))
    clips = store.read("clips", order_by=["clip_id"])
    x, _ = tiny_inputs()
    objects = {"probing_set": ProbingSet(Path("/nonexistent"), clips, pd.DataFrame(columns=["rel_path", "reason"])),
               ("waveforms", 100): x}
    fake = types.ModuleType("and_engine.pipeline.steps_models")
    fake.get_target_model = lambda ctx, name: tiny_model()
    monkeypatch.setitem(__import__("sys").modules, "and_engine.pipeline.steps_models", fake)
    return BuildContext(config=config, store=store, run_id="r1", progress=Progress(quiet=True), objects=objects,
                        fingerprints=upstream(names),
                        backends={("text_encoder", config.analyses.sentence_encoder): WordVectorEncoder()})


def upstream(names, **changed) -> dict:
    """Fingerprints of the earlier groups' steps the analyses need (what ``seed_store`` stands for)."""
    fps = {("captions", ()): "k0", **{("model", (("model", n),)): f"m-{n}" for n in names}}
    return {**fps, **{("extremes", (("layer", "fc1"), ("model", n))): fp for n, fp in changed.items()}}


@pytest.fixture()
def store(tmp_path):
    with ResultsStore(tmp_path / "a.duckdb") as s:
        seed_store(s, {"tiny": list(CLASSES), "audioset": ["speech", "music", "vehicle"]})
        yield s


def test_run_analyses_steps_writes_every_table_and_resumes(store, monkeypatch):
    ctx = make_ctx(store, monkeypatch, names=("tiny", "audioset"))
    run_analyses_steps(ctx)
    out = ctx.fingerprints
    assert ("pruning", (("model", "tiny"),)) in out and ("pruning", (("model", "audioset"),)) not in out
    for table in ANALYSIS_TABLES:
        assert store.count(table) > 0, table
    t2 = store.read("lastlayer_accuracy", model="tiny").set_index(["method", "similarity"])
    assert t2.loc[("DB", "cos3"), "top1"] == 100 and t2.loc[("DB", "cos"), "top1"] == 0
    t4 = store.read("pruning_summary", model="tiny")
    assert sorted(t4["method"]) == ["DB", "OCP", "TAB", "random"] and (t4["n_concepts"] == 3).all()
    steps = store.read("steps", ["stage", "params_json"], stage="pruning")
    assert '"DB": "cos3"' in steps["params_json"].iloc[0]  # best Table 2 similarity chose the DB selection
    assert (store.count("interpretability", model="audioset") > 0
            and store.count("pruning_summary", model="audioset") == 0)
    assert any("audioset" in m and "skipped" in m for m in ctx.progress.messages)
    for stage in ("clusters", "lastlayer"):  # the injected encoder did the work: no MiniLM was loaded
        params = store.read("steps", ["params_json"], stage=stage)["params_json"].iloc[0]
        assert '"backend": "word-vectors"' in params, stage

    again = make_ctx(store, monkeypatch, names=("tiny", "audioset"))
    run_analyses_steps(again)
    assert again.fingerprints == out
    assert again.executed == [] and len(again.skipped) == len(ctx.executed)


def test_changed_upstream_of_one_model_leaves_the_other(store, monkeypatch):
    ctx = make_ctx(store, monkeypatch, names=("tiny", "audioset"))
    ctx.fingerprints.update(upstream((), tiny="e1", audioset="e2"))
    run_analyses_steps(ctx)
    again = make_ctx(store, monkeypatch, names=("tiny", "audioset"))
    again.fingerprints.update(upstream((), tiny="e1-changed", audioset="e2"))
    run_analyses_steps(again)
    assert again.executed and all("model=tiny" in label for label in again.executed)
    # the stages that read the extremes, and only those
    assert {label.split()[0] for label in again.executed} == {"interpretability", "acoustic_check"}
