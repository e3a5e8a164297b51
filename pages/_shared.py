"""Streamlit glue shared by the pages: which databases to open, cached stores, friendly errors.

The results database is ``$AND_EXPLORER_DB`` if set, else ``run.database`` of ``$AND_EXPLORER_CONFIG``
(a TOML config), else the default config's database. Ratings go to ``$AND_EXPLORER_RATINGS``, else the
build's ``run.ratings_database``; live LLM answers to ``$AND_EXPLORER_LIVE_CACHE``, else ``run.live_llm_database``.
No computation or SQL here: only ``and_engine.explorer`` calls.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from time import sleep as _wait  # tests replace it
from typing import TypeVar

import streamlit as st

from and_engine.config import Config, load_config
from and_engine.explorer import aggregates, build_progress, export, live, media, queries
from and_engine.store.live_cache import LiveCache
from and_engine.store.ratings import RatingsStore
from and_engine.store.results import ResultsStore, StoreError, StoreLockedError

NEURON_PAGE = "pages/neuron.py"
READ_WAIT_S = 60.0  # how long a page waits for a build's commit to release the database
BANNER_REFRESH_S = 3.0  # how often the running build's banner refreshes
FIRST_PAINT_S = 0.15  # a fresh tab's pause after a page's main content (main_content_sent)
T = TypeVar("T")


def _leave_pages_directory_mode() -> None:
    """A fresh server whose first request deep-links a page (e.g. /neuron?...) runs that file directly in
    Streamlit's legacy pages/-directory mode (listing every file in pages/, app.py's navigation skipped).
    Switch to app.py's st.navigation and rerun. Streamlit offers no public switch for this flag."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_RUN = threading.local()  # stores opened by the current script run (each session runs on its own thread)
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~$:"})


def md(text: object) -> str:
    """Database text -> markdown that shows it literally (no links, images, HTML or formatting injected)."""
    return str(text).translate(_MD_SPECIAL)


def change_text(before: float, after: float) -> str | None:
    """A metric's delta "+1.2%" (after - before, as a percentage), or None when nothing changed: Streamlit draws
    any delta, "+0.0%" too, as a green arrow."""
    return f"{after - before:+.1%}" if after != before else None


def md_lines(text: object) -> str:
    """Like ``md`` but keeps the text's line breaks (numbered summary points stay one per line)."""
    return "  \n".join(md(line) for line in str(text).splitlines() if line.strip())


def results_path() -> Path:
    if os.environ.get("AND_EXPLORER_DB"):
        return Path(os.environ["AND_EXPLORER_DB"]).expanduser()
    cfg = load_config(os.environ["AND_EXPLORER_CONFIG"]) if os.environ.get("AND_EXPLORER_CONFIG") else Config()
    return cfg.resolve(cfg.run.database)


def store() -> ResultsStore:
    """A read-only results store for this page run; stops the page with a message if it cannot be opened.

    Opened per run (~20-60 ms) and closed by ``close_stores`` when the run ends (app.py), so the app holds
    no lock between page views: a build can write the database while the app is idle (DuckDB admits no
    writer while any process has the file open), and a rebuilt database is picked up at once.
    """
    _leave_pages_directory_mode()
    try:
        try:
            db = ResultsStore(results_path(), read_only=True)
        except StoreLockedError:
            with st.spinner("A build is committing a step to the database; waiting for it…"):
                db = ResultsStore(results_path(), read_only=True, wait_s=READ_WAIT_S)
    except StoreError as exc:
        st.error(f"Cannot open the results database: {md(exc)}")
        st.info("Build it first: `python -m and_engine build --config configs/demo.toml`, or point "
                "`AND_EXPLORER_DB` at an existing database.")
        st.stop()
    if not hasattr(_RUN, "stores"):
        _RUN.stores = []
    _RUN.stores.append(db)
    build_banner()
    problem = per_version(queries.clip_id_problem, db)
    if problem:  # results from two probing sets side by side: the pages would play the wrong files
        st.error(f"This results database is inconsistent: {md(problem)}")
        st.stop()
    return db


def missing(stage: str, what: str, absent: str | None = None) -> str:
    """The text for an empty result of ``stage``: being computed by the running build, or not in the database."""
    return md(build_progress.missing_text(results_path(), stage, what, absent))


def build_banner() -> None:
    """What a running (or unfinished) build of this database is doing; refreshed every few seconds while it
    runs, and the page reruns when the build finishes a step group (new results to show)."""
    path = str(results_path())
    shown = build_progress.banner(path)
    if shown is None:
        return
    seen = build_progress.state_key(path)

    def body() -> None:
        now = build_progress.banner(path)
        if build_progress.state_key(path) != seen:
            st.rerun()  # a step group finished, or the build ended: show the new results
        if now is not None:
            (st.info if now[0] == "info" else st.warning)(md(now[1]), icon=":material/construction:")

    st.fragment(body, run_every=BANNER_REFRESH_S if shown[0] == "info" else None)()


def main_content_sent(page: str, prepare: Callable[[], T] | None = None) -> T | None:
    """Call right after ``page``'s main content (its first data element) -> ``prepare()`` (None without it). The first
    time this session runs the page (a fresh tab: the browser has not loaded the code of the page's element kinds
    yet), wait a moment before the rest is sent, so the browser draws the main content at once instead of after the
    heavier elements below it (charts, tables, players) have loaded too: Streamlit's front end draws the elements
    that arrive together in one pass. The wait is ``$AND_EXPLORER_FIRST_PAINT_S`` seconds (default
    ``FIRST_PAINT_S``; 0 turns it off), less the time ``prepare`` took: a page reads what the rest of it shows in
    ``prepare`` while the browser draws, then sends the rest in one burst (each burst of elements costs the
    browser a pass over the whole page). A page whose main content needs the values of widgets drawn above it
    (Pruning) calls it after those widgets too, under a name of their own, so their element kinds load before the
    main content arrives. See docs/app.md."""
    start = time.monotonic()
    prepared = prepare() if prepare is not None else None
    shown = st.session_state.setdefault("_main_content_shown", set())
    if page not in shown:
        shown.add(page)
        pause = float(os.environ.get("AND_EXPLORER_FIRST_PAINT_S", FIRST_PAINT_S))
        _wait(max(0.0, pause - (time.monotonic() - start if prepare is not None else 0.0)))
    return prepared


def close_stores() -> None:
    """Close the results stores this script run opened (called by app.py when a page run ends)."""
    for db in getattr(_RUN, "stores", []):
        db.close()
    _RUN.stores = []


def database_version(path: Path) -> tuple:
    """What changes whenever a build writes ``path``: the file's and its write-ahead log's size and mtime."""
    out: tuple = (str(path),)
    for f in (path, path.with_name(path.name + ".wal")):
        st_ = f.stat() if f.exists() else None
        out += (st_.st_size, st_.st_mtime_ns) if st_ else (None, None)
    return out


@st.cache_data(show_spinner=False, max_entries=1024, ttl=3600)
def _per_version(name: str, version: tuple, args: tuple, kwargs: tuple, _fn: Callable, _db: ResultsStore):
    return _fn(_db, *args, **dict(kwargs))


def per_version(fn: Callable, db: ResultsStore, *args, **kwargs):
    """``fn(db, *args)`` computed once per database version and arguments for every session of this server: a
    fresh tab (a new session) reads what another tab read already instead of querying again (the database-wide
    reads of a page: models, layers, aggregates). For reads that do not depend on a neuron; arguments hashable."""
    return _per_version(f"{fn.__module__}.{fn.__qualname__}", database_version(results_path()), args,
                        tuple(sorted(kwargs.items())), fn, db)


@st.cache_data(show_spinner=False, ttl=600)
def _run_config(path: str, mtime: float, _db: ResultsStore) -> Config | None:
    return queries.run_config(_db)


def run_config(db: ResultsStore) -> Config:
    """The stored Config of the last finished build (the default Config for a database without one)."""
    path = results_path()
    return _run_config(str(path), path.stat().st_mtime, db) or Config()


@st.cache_resource(show_spinner=False)
def _ratings(path: str) -> RatingsStore:
    return RatingsStore(path)


def ratings_path(cfg: Config) -> str:
    """The ratings database: ``$AND_EXPLORER_RATINGS``, else ``run.ratings_database`` of the build's config."""
    return str(Path(os.environ.get("AND_EXPLORER_RATINGS") or cfg.resolve(cfg.run.ratings_database)).expanduser())


def ratings_store(cfg: Config | str) -> RatingsStore:
    """The (cached) ratings store of ``cfg`` (``ratings_path``) or at a path kept from an earlier run."""
    return _ratings(cfg if isinstance(cfg, str) else ratings_path(cfg))


@st.cache_resource(show_spinner=False)
def _live_cache(path: str) -> LiveCache:
    return LiveCache(path)


def live_cache_store(cfg: Config) -> LiveCache:
    """The (cached) side database of live LLM answers: ``$AND_EXPLORER_LIVE_CACHE``, else ``run.live_llm_database``
    of the build's config."""
    return _live_cache(str(Path(os.environ.get("AND_EXPLORER_LIVE_CACHE")
                                or cfg.resolve(cfg.run.live_llm_database)).expanduser()))


@st.cache_data(show_spinner=False, max_entries=256)
def _live_media(root: str, rel_path: str, sample_rate: int, seconds: float) -> media.ClipMedia:
    return media.live_clip_media(root, rel_path, sample_rate, seconds)


def clip_media(db: ResultsStore, cfg: Config, sample_rate: int, clips) -> dict[int, media.ClipMedia | str]:
    """{clip_id: ClipMedia} for ``clips`` rows (clip_id, rel_path): the build's ``clip_media`` rows (one read),
    else decoded from the probing set (a database built before that stage; cached per clip); where the audio
    cannot be read, a message saying why instead."""
    stored = queries.clip_media(db, sample_rate, clips["clip_id"].tolist())
    out: dict[int, media.ClipMedia | str] = {}
    for r in clips.itertuples():
        try:
            out[int(r.clip_id)] = stored.get(int(r.clip_id)) or _live_media(
                str(live.audio_root(cfg)), r.rel_path, sample_rate, cfg.probing_set.clip_seconds)
        except (media.UnsafePathError, OSError, ValueError) as exc:
            out[int(r.clip_id)] = f"Audio unavailable: {md(exc)}"
    return out


@st.cache_resource(show_spinner="Loading the model and its held-out clips…", max_entries=4)
def _pruning_target(db_path: str, db_mtime: float, model: str, _cfg: Config, _db: ResultsStore) -> live.PruningTarget:
    return live.load_pruning_target(_cfg, model, queries.clips(_db).reset_index(),
                                    aggregates.sae_checkpoints(_db, model))


def pruning_target(db: ResultsStore, cfg: Config, model: str) -> live.PruningTarget:
    """The live pruning target of ``model`` (model, held-out clips, pruning engine), loaded once per server and
    database version; shared by the Pruning page and the Neuron page's effect on the output."""
    path = results_path()
    return _pruning_target(str(path), path.stat().st_mtime, model, cfg, db)


def layers_or_stop(db: ResultsStore, model: str):
    """The model's dissected layers (queries.layers), or a warning and the end of the page if it has none."""
    try:
        return per_version(queries.layers, db, model)
    except queries.NotFoundError as exc:
        st.warning(md(exc))
        st.stop()


def neuron_link(model: str, layer: str, neuron: int, label: str | None = None) -> None:
    """A link to the Neuron page with the neuron in its query parameters."""
    st.page_link(NEURON_PAGE, label=md(label or f"{model} / {layer} / {neuron}"), icon=":material/search:",
                 query_params={"model": model, "layer": layer, "neuron": str(int(neuron))})


def download(label: str, name: str, tables: Callable[[ResultsStore], dict], key: str) -> None:
    """A format choice and a download button for what a page shows: ``tables(store)`` -> {table: DataFrame},
    written by ``export.export_bytes`` when the button is clicked (on a read-only store of its own: the page's
    store is closed by then)."""
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    fmt = c1.selectbox("format", export.FORMATS, key=f"{key}_format", help="Parquet and CSV: a zip with one file "
                       "per table; JSON: one document")
    path = results_path()

    def data() -> bytes:
        with ResultsStore(path, read_only=True) as db:
            return export.export_bytes(tables(db), fmt, name)[0]

    file_name, mime = export.download_name(name, fmt)
    c2.download_button(label, data, file_name=file_name, mime=mime, key=key, icon=":material/download:",
                       on_click="ignore")
