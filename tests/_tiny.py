"""A tiny but complete pipeline configuration (26 demo clips, two small YAMNet variants, two layers each, and an
SAE layer on yamnet's block3.pointwise)."""

from __future__ import annotations

from pathlib import Path

from and_engine.config import PROJECT_ROOT

HEADER_TOML = """
[run]
name = "{name}"
database = "{db}"
ratings_database = "{ratings}"
cache_dir = "{cache}"

[probing_set]
kind = "demo"
path = "{demo}"
max_clips = {max_clips}
"""

# the smallest SAE that trains in seconds (tests of SAE layers share it)
SMALL_SAE_TOML = """[sae]
expansion = 2
k = 8
epochs = 2
batch_size = 256
max_vectors = 3000
"""

TINY_BODY = """
[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block2.pointwise", "block3.pointwise"]
sae_layers = ["block3.pointwise"]

[[models]]
name = "yamnet-frozen"
kind = "yamnet-frozen"
layers = ["block2.pointwise", "classifier"]
train_epochs = 30

""" + SMALL_SAE_TOML + """
[summaries.llm]
backend = "rule"

[scores]
llm_scorers = ["detection", "simulation"]
llm_neurons = 8

[analyses]
n_clusters = 4
elbow_max_k = 6
prune_percents = [5.0]
seeds = [0]
"""


def write_config(folder: Path, body: str, name: str = "tiny", db_name: str = "tiny.duckdb", max_clips: int = 52,
                 cache: Path | None = None) -> Path:
    """The demo probing set (``max_clips`` clips) + ``body`` (models and options) -> ``folder/tiny.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    header = HEADER_TOML.format(name=name, db=folder / db_name, ratings=folder / "ratings.duckdb",
                                cache=cache or folder / "cache", demo=PROJECT_ROOT / "data" / "demo",
                                max_clips=max_clips)
    path = folder / "tiny.toml"
    path.write_text(header + body)
    return path


def write_tiny_config(folder: Path, db_name: str = "tiny.duckdb", cache: Path | None = None) -> Path:
    """Write the tiny config into ``folder`` (database + ratings there, checkpoints in ``cache``) -> its path."""
    return write_config(folder, TINY_BODY, db_name=db_name, cache=cache)
