"""Streamlit glue shared by the pages: which databases to open, cached stores, friendly errors.

The results database is ``$AND_EXPLORER_DB`` if set, else ``run.database`` of ``$AND_EXPLORER_CONFIG``
(a TOML config), else the default config's database. Ratings go to ``$AND_EXPLORER_RATINGS``, else the
build's ``run.ratings_database``. No computation or SQL here: only ``and_engine.explorer`` calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from and_engine.config import Config, load_config
from and_engine.explorer import queries
from and_engine.store.ratings import RatingsStore
from and_engine.store.results import ResultsStore, StoreError

NEURON_PAGE = "pages/neuron.py"
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~$:"})


def md(text: object) -> str:
    """Database text -> markdown that shows it literally (no links, images, HTML or formatting injected)."""
    return str(text).translate(_MD_SPECIAL)


def results_path() -> Path:
    if os.environ.get("AND_EXPLORER_DB"):
        return Path(os.environ["AND_EXPLORER_DB"]).expanduser()
    cfg = load_config(os.environ["AND_EXPLORER_CONFIG"]) if os.environ.get("AND_EXPLORER_CONFIG") else Config()
    return cfg.resolve(cfg.run.database)


@st.cache_resource(show_spinner=False)
def _open_store(path: str, mtime: float) -> ResultsStore:
    return ResultsStore(path, read_only=True)


def store() -> ResultsStore:
    """The cached read-only results store (reopened when the file changes); stops the page if missing."""
    path = results_path()
    try:
        return _open_store(str(path), path.stat().st_mtime if path.exists() else 0.0)
    except StoreError as exc:
        st.error(f"Cannot open the results database: {md(exc)}")
        st.info("Build it first: `python -m and_engine build --config configs/demo.toml`, or point "
                "`AND_EXPLORER_DB` at an existing database.")
        st.stop()


@st.cache_data(show_spinner=False, ttl=600)
def _run_config(path: str, mtime: float) -> Config | None:
    return queries.run_config(_open_store(path, mtime))


def run_config() -> Config:
    """The stored Config of the newest build (the default Config for a database without runs)."""
    path = results_path()
    store()
    return _run_config(str(path), path.stat().st_mtime) or Config()


@st.cache_resource(show_spinner=False)
def _ratings(path: str) -> RatingsStore:
    return RatingsStore(path)


def ratings_store() -> RatingsStore:
    cfg = run_config()
    path = os.environ.get("AND_EXPLORER_RATINGS") or str(cfg.resolve(cfg.run.ratings_database))
    return _ratings(str(Path(path).expanduser()))


def layers_or_stop(db: ResultsStore, model: str):
    """The model's dissected layers (queries.layers), or a warning and the end of the page if it has none."""
    try:
        return queries.layers(db, model)
    except queries.NotFoundError as exc:
        st.warning(md(exc))
        st.stop()


def neuron_link(model: str, layer: str, neuron: int, label: str | None = None) -> None:
    """A link to the Neuron page with the neuron in its query parameters."""
    st.page_link(NEURON_PAGE, label=md(label or f"{model} / {layer} / {neuron}"), icon=":material/search:",
                 query_params={"model": model, "layer": layer, "neuron": str(int(neuron))})
