"""Failed, interrupted and running builds are never "the" run; an interrupted rebuild after a probing-set edit
is refused by the app; a build that cannot start leaves no database (issue 12, items 3, 4 and 19).

The builds here are small: a folder of 8 demo clips, pretrained YAMNet, one layer, until the models group."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from _app_pages import run_page

from and_engine.config import PROJECT_ROOT, ActivationsConfig, Config, ModelConfig, ProbingSetConfig, RunConfig
from and_engine.explorer import humaneval, queries
from and_engine.pipeline import build as build_module
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.probing import ProbingSetError
from and_engine.store.results import ResultsStore

DEMO_AUDIO = PROJECT_ROOT / "data" / "demo" / "audio"


def _folder(root: Path, per_label: int = 4) -> Path:
    """A ``label/*.ogg`` probing set of demo clips (cow, rain) -> root."""
    for label in ("cow", "rain"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for src in sorted((DEMO_AUDIO / label).iterdir())[:per_label]:
            shutil.copy(src, root / label / src.name)
    return root


def _config(tmp_path: Path, name: str = "small", **probing) -> Config:
    return Config(run=RunConfig(name=name, database=str(tmp_path / "r.duckdb"),
                                ratings_database=str(tmp_path / "ratings.duckdb"), cache_dir=str(tmp_path / "c")),
                  probing_set=ProbingSetConfig(**{"kind": "folder", "path": str(tmp_path / "set"), **probing}),
                  models=(ModelConfig(name="yamnet", kind="yamnet", layers=("block2.pointwise",)),),
                  activations=ActivationsConfig(top_k=2, keep_maps=False))


def _fail_in(monkeypatch, group: str, error: BaseException) -> None:
    def boom(ctx):
        raise error
    monkeypatch.setitem(build_module.RUNNERS, group, boom)


def _runs(db: Path) -> list[tuple[str, str, bool]]:
    with ResultsStore(db, read_only=True) as store:
        df = store.query_df('SELECT config_name, status, finished_at IS NOT NULL AS ended FROM "runs" '
                            "ORDER BY started_at")
    return list(df.itertuples(index=False, name=None))


def test_failed_and_interrupted_builds_are_marked_and_never_read_as_the_run(tmp_path, monkeypatch):
    _folder(tmp_path / "set")
    good = _config(tmp_path, "good")
    build(good, Progress(quiet=True), until="probe")
    failing = _config(tmp_path, "mistyped", clip_seconds=2.0)  # another config, as a user's next try
    with monkeypatch.context() as m:
        _fail_in(m, "models", RuntimeError("no such checkpoint"))
        with pytest.raises(RuntimeError, match="no such checkpoint"):
            build(failing, Progress(quiet=True), until="models")
    with monkeypatch.context() as m:
        _fail_in(m, "models", KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            build(dataclasses.replace(failing, run=dataclasses.replace(failing.run, name="stopped")),
                  Progress(quiet=True), until="models")
    db = tmp_path / "r.duckdb"
    assert _runs(db) == [("good", "done", True), ("mistyped", "failed", True), ("stopped", "interrupted", True)]
    with ResultsStore(db, read_only=True) as store:
        assert queries.last_finished_run(store)["config_name"] == "good"
        assert queries.run_config(store).run.name == "good"  # the app, the ratings and live pruning read this
        assert queries.run_config(store).probing_set.clip_seconds == 5.0


def test_status_compares_with_the_last_finished_build(tmp_path, monkeypatch, capsys):
    from and_engine.cli import main

    _folder(tmp_path / "set")
    build(_config(tmp_path, "good"), Progress(quiet=True), until="probe")
    with monkeypatch.context() as m:
        _fail_in(m, "models", RuntimeError("boom"))
        with pytest.raises(RuntimeError):
            build(_config(tmp_path, "failed", max_clips=6), Progress(quiet=True), until="models")
    toml = tmp_path / "good.toml"
    cfg = _config(tmp_path, "good")
    toml.write_text(f'[run]\nname = "good"\ndatabase = "{cfg.run.database}"\nratings_database = '
                    f'"{cfg.run.ratings_database}"\ncache_dir = "{cfg.run.cache_dir}"\n[probing_set]\nkind = "folder"\n'
                    f'path = "{cfg.probing_set.path}"\n[[models]]\nname = "yamnet"\nlayers = ["block2.pointwise"]\n'
                    "[activations]\ntop_k = 2\nkeep_maps = false\n")
    assert main(["status", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "config keys changed since the last finished build: none" in out  # not max_clips, the failed one's


def test_description_steps_name_the_steps_that_wrote_a_neurons_descriptions(app_db):
    with ResultsStore(app_db, read_only=True) as store:
        row = store.query_df('SELECT model, layer, neuron FROM "calibrated_summaries" '
                             "WHERE length(calibrated_summary) > 0 ORDER BY layer, neuron LIMIT 1").iloc[0]
        got = humaneval.description_steps(store, row.model, row.layer, int(row.neuron))
        steps = store.query_df('SELECT stage, step_id FROM "steps" WHERE scope = ?',
                               [f"layer={row.layer}/model={row.model}"])
        by_stage = dict(zip(steps["stage"], steps["step_id"]))
        assert got == {"DB": by_stage["module_a"], "TAB": by_stage["module_a"], "SUMMARY": by_stage["module_b"]}
        assert set(got.values()) <= humaneval.current_description_steps(store)
        assert humaneval.description_steps(store, row.model, row.layer, 10**6) == {}


def test_an_interrupted_rebuild_after_adding_a_clip_is_refused_until_finished(tmp_path, monkeypatch):
    """``clip_id`` is a position in the sorted file list: a new first file shifts every id. A rebuild that
    stops after committing the new clips leaves extremes that name other files; the app refuses that
    database with a message, and finishing the build makes it consistent again."""
    _folder(tmp_path / "set")
    cfg = _config(tmp_path)
    db = tmp_path / "r.duckdb"
    build(cfg, Progress(quiet=True), until="models")
    with ResultsStore(db, read_only=True) as store:
        assert queries.clip_id_problem(store) is None
        before = store.query_df('SELECT c.rel_path FROM "extremes" e, "clips" c WHERE e.neuron = 0 '
                                "AND c.clip_id = e.topk_clip_ids[1]")["rel_path"].iloc[0]
    first = sorted((DEMO_AUDIO / "cow").iterdir())[-1]
    shutil.copy(first, tmp_path / "set" / "cow" / "0_added.ogg")  # sorts first: every clip id shifts by one
    with monkeypatch.context() as m:
        _fail_in(m, "models", KeyboardInterrupt())  # stopped right after the clips step
        with pytest.raises(KeyboardInterrupt):
            build(cfg, Progress(quiet=True), until="models")
    with ResultsStore(db, read_only=True) as store:
        after = store.query_df('SELECT c.rel_path FROM "extremes" e, "clips" c WHERE e.neuron = 0 '
                               "AND c.clip_id = e.topk_clip_ids[1]")["rel_path"].iloc[0]
        assert after != before  # the stale extremes now point at another file: the defect
        problem = queries.clip_id_problem(store)
    assert problem and "model (1), activations (1), extremes (1)" in problem and "Finish the build" in problem
    monkeypatch.setenv("AND_EXPLORER_DB", str(db))
    at = run_page("pages/overview.py")
    assert not at.exception
    assert [e.value for e in at.error] and "inconsistent" in at.error[0].value
    build(cfg, Progress(quiet=True), until="models")
    with ResultsStore(db, read_only=True) as store:
        assert queries.clip_id_problem(store) is None
    assert not run_page("pages/overview.py").error


def test_a_build_that_cannot_start_leaves_no_database(tmp_path):
    cfg = _config(tmp_path)  # tmp_path/set does not exist
    with pytest.raises(ProbingSetError, match="not found"):
        build(cfg, Progress(quiet=True))
    assert not (tmp_path / "r.duckdb").exists()
    (tmp_path / "set" / "dog").mkdir(parents=True)
    (tmp_path / "set" / "dog" / "broken.wav").write_bytes(b"RIFF-not-audio")
    with pytest.raises(ProbingSetError, match="no usable clip"):
        build(cfg, Progress(quiet=True))
    assert not (tmp_path / "r.duckdb").exists()  # created by this build, no step committed: removed again
    _folder(tmp_path / "set")
    build(cfg, Progress(quiet=True), until="probe")
    with pytest.raises(ProbingSetError):  # a database with results is never removed
        build(dataclasses.replace(cfg, probing_set=dataclasses.replace(cfg.probing_set, path=str(tmp_path / "x"))))
    assert [status for _, status, _ in _runs(tmp_path / "r.duckdb")] == ["done"]
