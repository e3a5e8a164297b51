"""The pipeline graph: consistent declarations, scoped keys and upstream steps, one runner per group."""

from __future__ import annotations

import dataclasses

import pytest

from and_engine.config import Config, ModelConfig
from and_engine.pipeline import graph
from and_engine.pipeline.build import RUNNERS
from and_engine.pipeline.core import BuildContext, Progress, run_stage
from and_engine.store import schema

CONFIG = Config(models=(ModelConfig(name="pre", kind="yamnet", train_epochs=7),
                        ModelConfig(name="tuned", kind="yamnet-frozen", train_epochs=3)))
PRE, TUNED = {"model": "pre"}, {"model": "tuned"}


def test_declarations_are_consistent_and_cover_every_key():
    from and_engine.models.registry import TRAINED

    assert graph.check_graph() == []
    assert graph.TRAINED_KINDS == TRAINED  # the graph's copy (it loads no torch) of the trained kinds
    assert set(RUNNERS) == set(graph.GROUPS)
    assert all(s.group in graph.GROUPS for s in graph.STAGES)
    filled = {t for s in graph.STAGES for t in s.tables}
    assert filled == set(schema.RESULT_TABLES)  # every result table has a stage that fills it


def test_a_key_nothing_declares_is_reported(monkeypatch):
    keys = graph.config_keys()
    monkeypatch.setattr(graph, "config_keys", lambda: [*keys, "module_b.new_knob"])
    assert graph.check_graph() == ["config key module_b.new_knob is read by no stage and not listed in NOT_READ"]


def test_config_keys_are_dotted_leaves_with_tables_of_items():
    keys = graph.config_keys()
    assert {"run.seed", "models[].train_epochs", "summaries.llm.backend", "summaries.overrides[].llm.seed",
            "analyses.basic_adjectives"} <= set(keys)
    assert "models" not in keys and "summaries.llm" not in keys and len(keys) == len(set(keys))


def test_model_keys_are_the_scope_models_and_training_keys_count_for_trained_variants_only():
    model = graph.STAGE["model"]
    pre, tuned = graph.config_part(model, CONFIG, PRE), graph.config_part(model, CONFIG, TUNED)
    assert tuned["models[].train_epochs"] == 3 and tuned["run.seed"] == 0
    assert "models[].train_epochs" not in pre and "run.seed" not in pre and pre["models[].kind"] == "yamnet"
    reseeded = dataclasses.replace(CONFIG, run=dataclasses.replace(CONFIG.run, seed=5))
    assert graph.config_part(model, reseeded, PRE) == pre and graph.config_part(model, reseeded, TUNED) != tuned


def test_module_c_reads_basic_adjectives_and_not_read_keys_are_in_no_fingerprint():
    assert "analyses.basic_adjectives" in graph.read_keys(graph.STAGE["module_c"])
    assert "analyses.basic_adjectives" in graph.read_keys(graph.STAGE["adjective_checks"])
    read = {k for s in graph.STAGES for k in graph.read_keys(s)}
    assert not read & set(graph.NOT_READ)


def test_icl_reads_module_b_only_for_calibrated_summaries():
    icl = graph.STAGE["module_a_icl"]
    scope = {"model": "pre", "layer": "l1"}
    assert graph.upstream_stages(icl, CONFIG, scope) == ["summaries"]
    calibrated = dataclasses.replace(CONFIG, module_a=dataclasses.replace(CONFIG.module_a, icl_summary="calibrated"))
    assert graph.upstream_stages(icl, calibrated, scope) == ["summaries", "module_b"]
    off = dataclasses.replace(CONFIG, module_a=dataclasses.replace(CONFIG.module_a, icl=False))
    assert graph.exists(icl, CONFIG, scope) and not graph.exists(icl, off, scope)


def test_upstream_steps_follow_the_scopes():
    def key(stage, **scope):
        return (stage, graph.scope_of(scope))
    steps = [key("clips"), key("captions"), key("model", model="pre"), key("model", model="tuned"),
             key("module_b", model="pre", layer="a"), key("module_b", model="pre", layer="b"),
             key("module_b", model="tuned", layer="a"), key("module_c", model="pre", layer="a"),
             key("module_c", model="tuned", layer="a"), key("adjective_checks")]
    # a layer reads its own model's and the global steps; a model all of its layers; a global step everything
    assert graph.upstream_keys(graph.STAGE["module_c"], CONFIG, {"model": "pre", "layer": "a"}, steps) == [
        key("module_b", model="pre", layer="a"), key("adjective_checks")]
    assert graph.upstream_keys(graph.STAGE["adjectives"], CONFIG, PRE, steps) == [
        key("model", model="pre"), key("module_c", model="pre", layer="a")]
    assert graph.upstream_keys(graph.STAGE["adjective_checks"], CONFIG, {}, steps) == [
        key("module_b", model="pre", layer="a"), key("module_b", model="pre", layer="b"),
        key("module_b", model="tuned", layer="a")]
    assert graph.missing_upstream(graph.STAGE["activations"], CONFIG, {"model": "x", "layer": "a"}, steps) == ["model"]
    assert graph.missing_upstream(graph.STAGE["pruning"], CONFIG, PRE, steps) == []  # lastlayer is optional


def test_run_stage_needs_its_upstream_steps(tmp_path):
    from and_engine.store.results import ResultsStore

    with ResultsStore(tmp_path / "g.duckdb") as store:
        ctx = BuildContext(config=CONFIG, store=store, run_id="r", progress=Progress(quiet=True))
        with pytest.raises(KeyError, match="needs the clips step"):
            run_stage(ctx, "captions", {}, {}, dict)


def test_architecture_doc_shows_the_current_graph():
    """docs/ARCHITECTURE.md's diagram is the one generated from the declarations (it cannot drift)."""
    from and_engine.config import PROJECT_ROOT
    from and_engine.pipeline.diagram import mermaid

    doc = (PROJECT_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert "```mermaid\n" + mermaid() + "```" in doc
