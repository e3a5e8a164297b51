"""The whole pipeline on a tiny configuration: every table filled, reruns skip, a killed build resumes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from and_engine.config import PROJECT_ROOT, load_config
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.store import schema
from and_engine.store.results import ResultsStore

# tables that must hold rows after a tiny build (analyses that need more data may be empty)
REQUIRED = ["clips", "captions", "acoustic_features", "models", "layers", "activations", "extremes",
            "activation_maps", "summaries", "closed_concepts", "calibration_points", "calibrated_summaries",
            "open_concepts", "pos_counts", "adjective_checks", "lastlayer_accuracy", "pruning_summary",
            "pruning_per_class", "feature_importance", "adjective_stats", "top_adjectives", "cluster_elbow",
            "caption_sentences", "cluster_words", "interpretability", "explanations", "scoring_sets",
            "explanation_scores", "score_summary", "caption_truth", "neuron_truth", "explanation_truth",
            "truth_rates", "sae_metrics"]


def table_snapshot(db) -> dict[str, pd.DataFrame]:
    """Every result table without step ids, sorted -> comparable across builds."""
    out = {}
    with ResultsStore(db, read_only=True) as store:
        for table in schema.RESULT_TABLES:
            cols = [c for c in schema.columns(table) if c != "step_id"]
            df = store.read(table, columns=cols)
            key = [c for c in cols if df[c].map(lambda v: isinstance(v, (str, int, float, bool))).all()]
            out[table] = df.sort_values(key).reset_index(drop=True) if key else df
    return out


def test_tiny_build_fills_every_table(tiny_build):
    _, config, result = tiny_build
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        empty = [t for t in REQUIRED if store.count(t) == 0]
        assert not empty, f"empty tables after the tiny build: {empty}"
        n_clips = store.count("clips")
        acts = store.read_activations("yamnet", "block2.pointwise")
        assert acts.shape[0] == n_clips == 52
        # every neuron has S_h and S_l, and every row says what produced it
        layers = store.read("layers")
        n_neurons = int(layers["n_neurons"].sum())
        summaries = store.read("summaries")
        assert len(summaries) == 2 * n_neurons
        assert set(summaries["backend"]) == {"rule"}
        orphans = store.query_df("SELECT count(*) AS n FROM summaries s LEFT JOIN steps t USING (step_id) "
                                 "WHERE t.step_id IS NULL")
        assert orphans["n"][0] == 0
    assert result.executed and not result.skipped
    # the tiny build runs every stage the graph declares, and no other
    from and_engine.pipeline.graph import STAGE

    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        built = set(store.read("steps", ["stage"])["stage"])
    assert built == set(STAGE)


def test_rebuild_skips_everything(tiny_build):
    _, config, _ = tiny_build
    db = config.resolve(config.run.database)
    with ResultsStore(db, read_only=True) as store:
        counts = {t: store.count(t) for t in schema.RESULT_TABLES}
    progress = Progress(quiet=True)
    again = build(config, progress)
    assert again.executed == []
    assert len(again.skipped) > 10
    assert not [m for m in progress.messages if m.startswith("removed")]
    with ResultsStore(db, read_only=True) as store:
        assert {t: store.count(t) for t in schema.RESULT_TABLES} == counts


def test_dropping_a_layer_from_the_config_leaves_no_stale_rows(tiny_build, tmp_path):
    path, config, _ = tiny_build
    shutil.copy(config.resolve(config.run.database), tmp_path / "copy.duckdb")
    text = path.read_text().replace(str(config.resolve(config.run.database)), str(tmp_path / "copy.duckdb"))
    changed = tmp_path / "dropped.toml"
    changed.write_text(text.replace('layers = ["block2.pointwise", "block3.pointwise"]',
                                    'layers = ["block2.pointwise"]'))
    progress = Progress(quiet=True)
    build(load_config(changed), progress)
    assert any("block3.pointwise" in m for m in progress.messages if m.startswith("removed"))
    with ResultsStore(tmp_path / "copy.duckdb", read_only=True) as store:
        for table in schema.RESULT_TABLES:
            if "layer" in schema.columns(table):
                left = store.query_df(f'SELECT count(*) AS n FROM "{table}" WHERE model = ? AND layer = ?',
                                      ["yamnet", "block3.pointwise"])["n"][0]
                assert left == 0, f"{table} still holds rows of the dropped layer"
        assert store.count("activations", model="yamnet", layer="block2.pointwise") == 64
        assert store.count("adjective_stats", model="yamnet") > 0  # analyses ran on what is left


def test_changing_a_parameter_recomputes_only_downstream(tiny_build, tmp_path):
    path, config, _ = tiny_build
    shutil.copy(config.resolve(config.run.database), tmp_path / "copy.duckdb")  # the shared build stays as it is
    text = path.read_text().replace(str(config.resolve(config.run.database)), str(tmp_path / "copy.duckdb"))
    changed = tmp_path / "changed.toml"
    changed.write_text(text.replace("[analyses]", "[module_b]\nthreshold = 0.5\n\n[analyses]"))
    # the tiny build's database (a copy): calibration and what follows are recomputed, activations and captions
    # are not
    result = build(load_config(changed), Progress(quiet=True))
    stages = {label.split()[0] for label in result.executed}
    assert "activations" not in stages and "captions" not in stages and "clips" not in stages
    assert stages, "a changed Module B threshold must recompute something"


def _build_killed_inside(cfg_path, crash_stage: str) -> None:
    """``python -m and_engine build`` of ``cfg_path`` in a subprocess that SIGKILLs itself inside the first
    commit of ``crash_stage`` (``tests/_crash_build.py``)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    crashed = subprocess.run([sys.executable, str(PROJECT_ROOT / "tests" / "_crash_build.py"), str(cfg_path),
                              crash_stage], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    assert f"inside stage {crash_stage!r}" in crashed.stdout


@pytest.mark.slow
def test_killed_build_resumes_with_same_results(tiny_build, tmp_path):
    """A fresh build SIGKILLed inside the first commit of ``activations``; its rerun SIGKILLed inside the first
    commit of ``summaries``; the next rerun finishes. Each kill leaves no half-written step and a run still
    marked running; each rerun keeps what was committed; the tables equal the clean tiny build's.
    (One build killed twice: the same two kill points as two killed builds, at the cost of one build.)"""
    _, config, _ = tiny_build
    from _tiny import write_tiny_config

    cfg_path = write_tiny_config(tmp_path, cache=config.resolve(config.run.cache_dir))
    db = tmp_path / "tiny.duckdb"
    committed: set[str] = set()
    for kills, crash_stage in enumerate(["activations", "summaries"], start=1):
        _build_killed_inside(cfg_path, crash_stage)
        with ResultsStore(db, read_only=True) as store:  # the half-written step left nothing behind
            assert store.query_df("SELECT count(*) AS n FROM steps WHERE stage = ?", [crash_stage])["n"][0] == 0
            steps = set(store.read("steps", ["step_id"])["step_id"])
            killed = store.read("runs", ["status", "finished_at"])  # a killed build: told apart from a finished one
            assert killed["status"].tolist() == ["running"] * kills and killed["finished_at"].isna().all()
        assert committed < steps  # the rerun kept every committed step (not redone) and committed more
        committed = steps
    resumed = build(load_config(cfg_path), Progress(quiet=True))
    assert "clips" in " ".join(resumed.skipped)  # finished work is not redone
    assert len(resumed.skipped) >= len(committed) > 0
    reference = table_snapshot(config.resolve(config.run.database))
    resumed_tables = table_snapshot(db)
    for table, ref in reference.items():
        got = resumed_tables[table]
        assert len(got) == len(ref), f"{table}: {len(got)} rows after resume, {len(ref)} in a clean build"
        # absolute tolerance too: a correlation near 0 (explanation_scores.pearson_r) moves by ~1e-7 when the
        # embeddings' float rounding does (thread counts), which a relative tolerance alone calls a difference
        pd.testing.assert_frame_equal(got, ref, check_dtype=False, atol=1e-6, obj=table)
