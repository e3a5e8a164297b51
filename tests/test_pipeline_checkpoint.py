"""An AST from a local checkpoint goes through the models steps; replacing its weights in place rebuilds."""

from __future__ import annotations

from _models_fixtures import tiny_ast

from and_engine.config import PROJECT_ROOT, load_config
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.store.results import ResultsStore

TOML = """
[run]
database = "{db}"
cache_dir = "{cache}"
[probing_set]
kind = "demo"
path = "{demo}"
max_clips = 26
[[models]]
name = "my-ast"
kind = "ast-checkpoint"
checkpoint = "{ckpt}"
"""


def _save(ckpt, seed):
    model, fe = tiny_ast(n_labels=3, seed=seed)
    model.save_pretrained(ckpt)
    fe.save_pretrained(ckpt)


def test_replaced_checkpoint_weights_invalidate_the_model_steps(tmp_path):
    ckpt = tmp_path / "ckpt"
    _save(ckpt, seed=0)
    path = tmp_path / "c.toml"
    path.write_text(TOML.format(db=tmp_path / "r.duckdb", cache=tmp_path / "cache", demo=PROJECT_ROOT / "data" / "demo",
                                ckpt=ckpt))
    config = load_config(path)
    first = build(config, Progress(quiet=True), until="models")
    assert any(label.startswith("activations") for label in first.executed)
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        before = store.read_activations("my-ast", "block0.mlp.fc1")
        assert before.shape == (26, 64)
    assert build(config, Progress(quiet=True), until="models").executed == []  # unchanged -> skipped
    _save(ckpt, seed=1)  # retrained in place: same path, new weights
    again = build(config, Progress(quiet=True), until="models")
    assert any(label.startswith("activations") for label in again.executed)
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        assert abs(store.read_activations("my-ast", "block0.mlp.fc1") - before).max() > 1e-3
