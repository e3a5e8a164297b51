"""Steps 6-8 wired on a tiny build: Module A (DB, TAB, ICL), B, C write their tables, skip when unchanged."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from _tiny import write_config

from and_engine.config import load_config
from and_engine.pipeline.build import build
from and_engine.pipeline.core import BuildContext, Progress
from and_engine.pipeline.steps_dissect import run_dissect_steps
from and_engine.store.results import ResultsStore
from and_engine.store.schema import columns

BODY = """
[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block1.conv", "block2.pointwise"]

[summaries.llm]
backend = "rule"

[module_a]
similarities = ["cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi"]
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny config built up to the describe group -> (config, upstream fingerprints, shared objects)."""
    folder = tmp_path_factory.mktemp("dissect")
    config = load_config(write_config(folder, BODY, name="dissect-tiny", db_name="t.duckdb", max_clips=24))
    return config, build(config, Progress(quiet=True), until="describe").fingerprints, ({}, {})


def _run(config, upstream, shared):
    """Run the dissect steps in a fresh context; ``shared`` (matrices; loaded encoders, tagger) is reused."""
    objects, backends = shared
    with ResultsStore(config.resolve(config.run.database)) as store:
        ctx = BuildContext(config=config, store=store, run_id="test", progress=Progress(quiet=True), objects=objects,
                           fingerprints=dict(upstream), backends=backends)
        run_dissect_steps(ctx)
        out = ctx.fingerprints
        tables = {t: store.read(t) for t in ("closed_concepts", "calibration_points", "calibrated_summaries",
                                             "open_concepts", "pos_counts", "adjective_checks", "layers", "summaries",
                                             "clips")}
    return ctx, out, tables


def test_dissect_steps_fill_every_table_and_skip_when_unchanged(built):
    config, upstream, objects = built
    ctx, out, t = _run(config, upstream, objects)
    for layer in ("block1.conv", "block2.pointwise"):
        for stage in ("module_a", "module_b", "module_c", "module_a_icl"):
            assert (stage, (("layer", layer), ("model", "yamnet"))) in out
    assert ("adjective_checks", ()) in out
    cc = t["closed_concepts"]
    assert list(cc.columns) == columns("closed_concepts")
    assert {"DB", "TAB"} <= set(cc["method"]) <= {"DB", "TAB", "ICL"}
    # ICL stores no concept (no guess) for a neuron whose S_h names no class; on these 24 clips no S_h does
    sh = t["summaries"][t["summaries"]["side"] == "top"].set_index(["layer", "neuron"])["summary"].str.lower()
    names = [c.replace("_", " ") for c in t["clips"]["label"].unique()]
    naming = {key for key, text in sh.items() if any(re.search(rf"\b{re.escape(n)}", text) for n in names)}
    icl = cc[cc["method"] == "ICL"]
    assert set(zip(icl["layer"], icl["neuron"])) <= naming
    db = cc[(cc["method"] == "DB") & (cc["layer"] == "block2.pointwise")]
    n_neurons = int(t["layers"].set_index("layer").loc["block2.pointwise", "n_neurons"])
    assert set(db["similarity"]) == set(config.module_a.similarities)
    assert db.groupby("similarity")["neuron"].nunique().eq(n_neurons).all()
    assert db["score"].notna().all() and set(db["rank"]) == {1, 2, 3, 4, 5}
    sw = db[db["similarity"] == "soft_wpmi"].pivot_table(index="neuron", columns="rank", values="score")
    assert np.abs(sw.to_numpy()).max() > 0  # not the paper code's all-zero soft_wpmi
    assert len(t["calibrated_summaries"]) > 0 and (t["calibrated_summaries"]["threshold"] == 0.7).all()
    assert len(t["calibration_points"]) > 0 and len(t["pos_counts"]) == len(t["calibrated_summaries"])
    assert t["adjective_checks"]["adjective"].is_unique and t["adjective_checks"]["accepted"].any()
    assert set(t["open_concepts"]["pos"]) <= {"ADJ", "NOUN"} and len(t["open_concepts"]) > 0
    accepted = set(t["adjective_checks"].loc[t["adjective_checks"]["accepted"], "adjective"])
    assert set(t["open_concepts"].loc[t["open_concepts"]["pos"] == "ADJ", "word"]) <= accepted

    ctx2, out2, t2 = _run(config, upstream, objects)
    assert ctx2.executed == [] and out2 == out  # nothing changed -> every step skipped


def test_changing_the_threshold_recomputes_b_and_downstream_only(built):
    config, upstream, objects = built
    _run(config, upstream, objects)
    changed = dataclasses.replace(config, module_b=dataclasses.replace(config.module_b, threshold=0.5))
    ctx, _, t = _run(changed, upstream, objects)
    stages = {label.split()[0] for label in ctx.executed}
    assert {"module_a", "module_a_icl"}.isdisjoint(stages) and {"module_b", "module_c"} <= stages  # ICL reads S_h
    calibrated = dataclasses.replace(changed, module_a=dataclasses.replace(config.module_a, icl_summary="calibrated"))
    ctx, _, _ = _run(calibrated, upstream, objects)
    assert {label.split()[0] for label in ctx.executed} == {"module_a_icl"}
    assert (t["calibrated_summaries"]["threshold"] == 0.5).all()


def test_topk_scope_esc50_concepts_and_no_adjective_filter(built):
    config, upstream, objects = built
    changed = dataclasses.replace(
        config, module_a=dataclasses.replace(config.module_a, db_scope="topk", concept_set="esc50", icl=False,
                                             similarities=("cos", "rank_reorder")),
        module_c=dataclasses.replace(config.module_c, adjective_filter=False))
    _, _, t = _run(changed, upstream, objects)
    assert t["adjective_checks"].empty  # filter off: no LLM questions, every adjective is an open concept
    assert (t["open_concepts"]["pos"] == "ADJ").any()
    db = t["closed_concepts"][t["closed_concepts"]["method"] == "DB"]
    assert set(db["similarity"]) == {"cos", "rank_reorder"} and db["score"].notna().all()
    from and_engine.stages.concept_sets import ESC50_CLASSES

    assert set(db["concept"]) <= set(ESC50_CLASSES)
