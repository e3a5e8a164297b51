"""The explorer's query layer: narrow, parameterised reads of the results database -> DataFrames.

Every function takes a ``ResultsStore`` (SQL goes only through ``store.read`` / ``store.query_df``,
values always bound) and touches at most one neuron's activations. Pages call these; they run no SQL.
Neuron-level reads use the (model, layer, neuron) indexes of ``schema.INDEXES``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from and_engine.config import Config, config_from_dict
from and_engine.explorer.media import ClipMedia
from and_engine.store import schema
from and_engine.store.results import ResultsStore


class NotFoundError(ValueError):
    """The model / layer / neuron asked for is not in the results database; the message names it."""


def has_table(store: ResultsStore, table: str) -> bool:
    """Whether the database has ``table`` (one written by an older version may lack a newer stage's tables)."""
    return not store.query_df("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [table]).empty


def models(store: ResultsStore) -> pd.DataFrame:
    """-> one row per target model (kind, held-out accuracy, class names, ...)."""
    return store.read("models", order_by=["model"])


def runs(store: ResultsStore) -> pd.DataFrame:
    """-> builds recorded in the database, newest first (without the bulky config JSON)."""
    return store.query_df('SELECT run_id, config_name, config_hash, code_version, started_at, finished_at, status '
                          'FROM "runs" ORDER BY started_at DESC')


def last_finished_run(store: ResultsStore) -> dict | None:
    """-> the ``runs`` row (run_id, config_name, config_json, finished_at) of the last build that finished
    (status ``done``), or None. A failed, interrupted or running build is never "the" run."""
    df = store.query_df('SELECT run_id, config_name, config_json, finished_at FROM "runs" WHERE status = ? '
                        "ORDER BY finished_at DESC, started_at DESC LIMIT 1", [schema.RUN_DONE])
    return df.iloc[0].to_dict() if len(df) else None


def run_config(store: ResultsStore) -> Config | None:
    """-> the Config of the last finished build (rebuilt from ``runs.config_json``), or None if none finished."""
    run = last_finished_run(store)
    return config_from_dict(json.loads(run["config_json"]), check=False) if run else None


def clip_id_problem(store: ResultsStore) -> str | None:
    """-> None when every stored result refers to the clips of the ``clips`` table, else why not.

    ``clip_id`` is a position in the probing set's sorted file list. When the probing set changes, a build
    recommits the ``clips`` step first and then recomputes every later step (each depends on it), so a step
    left by a build that started before the one that committed the current ``clips`` step was computed on
    the earlier list (an interrupted rebuild): its clip ids may name other files. (Builds are compared by
    their ``runs.started_at``, which the store writes; a step whose run is not recorded is not judged.)
    """
    df = store.query_df(
        'SELECT s.stage, count(*) AS n FROM "steps" s JOIN "runs" r USING (run_id), "steps" c JOIN "runs" rc '
        "USING (run_id) WHERE c.stage = 'clips' AND s.stage <> 'clips' AND s.run_id <> c.run_id "
        "AND r.started_at < rc.started_at GROUP BY s.stage ORDER BY min(s.started_at)")
    if df.empty:
        return None
    stages = ", ".join(f"{r.stage} ({r.n})" for r in df.itertuples())
    return (f"the probing set changed and a rebuild has not finished: {int(df['n'].sum())} step(s) still hold "
            f"results computed on the earlier clip list ({stages}), so their clip ids may name other files. "
            "Finish the build (python -m and_engine build --config ...) to make the database consistent.")


def steps(store: ResultsStore) -> pd.DataFrame:
    """-> provenance: every committed step with its parameters (backend, model, ...) and row count."""
    df = store.query_df('SELECT stage, scope, params_json, fingerprint, code_version, started_at, finished_at, '
                        'n_rows FROM "steps" ORDER BY started_at')
    df["seconds"] = (df["finished_at"] - df["started_at"]).dt.total_seconds().round(2)
    return df


def layers(store: ResultsStore, model: str, dissected_only: bool = True) -> pd.DataFrame:
    """-> the model's layers in network order with neuron counts and map geometry.

    ``dissected_only``: only layers with top-K / bottom-K results (a config may hook a subset of layers).
    """
    where = ' AND EXISTS (SELECT 1 FROM "extremes" e WHERE e.model = l.model AND e.layer = l.layer)'
    df = store.query_df('SELECT l.* EXCLUDE (step_id) FROM "layers" l WHERE l.model = ?'
                        + (where if dissected_only else "") + " ORDER BY l.layer_index", [model])
    if df.empty:
        raise NotFoundError(f"model {model!r} has no {'dissected ' if dissected_only else ''}layers in the "
                            "results database")
    return df


def check_neuron(store: ResultsStore, model: str, layer: str, neuron: int) -> int:
    """Validate (model, layer, neuron) against the ``layers`` table -> the layer's neuron count."""
    df = store.read("layers", ["n_neurons"], model=model, layer=layer)
    if df.empty:
        raise NotFoundError(f"no layer {layer!r} in model {model!r}")
    n = int(df["n_neurons"].iloc[0])
    if not 0 <= int(neuron) < n:
        raise NotFoundError(f"neuron {neuron} out of range for {model}/{layer} (0..{n - 1})")
    return n


def clips(store: ResultsStore, clip_ids: list[int] | None = None) -> pd.DataFrame:
    """-> clips (+ caption) for ``clip_ids`` (all clips if None), indexed by clip_id."""
    where, params = "", []
    if clip_ids is not None:
        if not clip_ids:
            return pd.DataFrame(columns=["rel_path", "label", "fold", "duration_s", "caption"]).rename_axis("clip_id")
        where, params = f'WHERE c.clip_id IN ({", ".join("?" * len(clip_ids))})', [int(i) for i in clip_ids]
    return store.query_df(f'SELECT c.clip_id, c.rel_path, c.label, c.fold, c.duration_s, k.caption FROM "clips" c '
                          f'LEFT JOIN "captions" k USING (clip_id) {where} ORDER BY c.clip_id', params
                          ).set_index("clip_id")


def activations(store: ResultsStore, model: str, layer: str, neuron: int) -> np.ndarray:
    """-> (n_clips,) float32: one neuron's activation on every clip (one indexed row, never a layer)."""
    df = store.read("activations", ["values"], model=model, layer=layer, neuron=int(neuron))
    if df.empty:
        raise NotFoundError(f"no activations for {model}/{layer}/{neuron}")
    return np.asarray(df["values"].iloc[0], dtype=np.float32)


def extremes(store: ResultsStore, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """-> top-K then bottom-K clips of a neuron: side, rank, clip_id, activation, rel_path, label, caption."""
    df = store.read("extremes", model=model, layer=layer, neuron=int(neuron))
    if df.empty:
        raise NotFoundError(f"no top-K / bottom-K clips for {model}/{layer}/{neuron}")
    row = df.iloc[0]
    parts = [pd.DataFrame({"side": side, "rank": range(len(row[f"{side}k_clip_ids"])),
                           "clip_id": np.asarray(row[f"{side}k_clip_ids"], dtype=int),
                           "activation": np.asarray(row[f"{side}k_values"], dtype=float)})
             for side in ("top", "bottom")]
    out = pd.concat(parts, ignore_index=True)
    return out.join(clips(store, out["clip_id"].tolist()), on="clip_id")


def activation_maps(store: ResultsStore, model: str, layer: str, neuron: int) -> dict[int, np.ndarray]:
    """-> {clip_id: (n_freq, n_time) map} for the neuron's top-K clips ({} if the layer keeps no maps)."""
    df = store.read("activation_maps", ["clip_id", "n_freq", "n_time", "map"], model=model, layer=layer,
                    neuron=int(neuron))
    return {int(r.clip_id): np.asarray(r.map, dtype=np.float32).reshape(int(r.n_freq), int(r.n_time))
            for r in df.itertuples()}


def clip_media(store: ResultsStore, sample_rate: int, clip_ids: list[int]) -> dict[int, ClipMedia]:
    """-> {clip_id: ClipMedia} of the build's ``clip_media`` rows at ``sample_rate`` for ``clip_ids`` (one indexed
    read; clips without a row, or a database built before the stage existed, are simply absent)."""
    if not clip_ids or store.query_df("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", ["clip_media"]).empty:
        return {}
    df = store.read("clip_media", ["clip_id", "audio", "audio_mime", "n_mels", "n_frames", "spectrogram"],
                    sample_rate=int(sample_rate), clip_id=[int(i) for i in clip_ids])
    return {int(r["clip_id"]): ClipMedia.from_row(r) for r in df.to_dict("records")}


def summaries(store: ResultsStore, model: str, layer: str, neuron: int) -> dict[str, dict]:
    """-> {'top': {...}, 'bottom': {...}}: S_h / S_l with the backend and LLM that wrote them, and status."""
    df = store.read("summaries", ["side", "summary", "backend", "llm_model", "status"], model=model, layer=layer,
                    neuron=int(neuron))
    return {r["side"]: r for r in df.to_dict("records")}


def calibration(store: ResultsStore, model: str, layer: str, neuron: int) -> tuple[pd.DataFrame, dict | None]:
    """-> (points of S_h with best S_l match and cosine, stored calibrated summary row or None)."""
    pts = store.read("calibration_points", ["point_index", "point", "best_match", "best_cosine"], model=model,
                     layer=layer, neuron=int(neuron), order_by=["point_index"])
    cal = store.read("calibrated_summaries", ["threshold", "calibrated_summary", "n_points", "n_removed"],
                     model=model, layer=layer, neuron=int(neuron))
    return pts, (cal.iloc[0].to_dict() if len(cal) else None)


def closed_concepts(store: ResultsStore, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """-> the neuron's top-5 closed-set concepts per method and similarity function, with scores."""
    return store.read("closed_concepts", ["method", "similarity", "rank", "concept", "score"], model=model,
                      layer=layer, neuron=int(neuron), order_by=["method", "similarity", "rank"])


NO_ANSWER = "no answer: the LLM named no class for this description, so no concept is stored"
NO_CONCEPT = ("no concept: the best score is shared by every concept or by more than the top-n (e.g. "
              "rank_reorder -0), or the neuron's activation does not vary")


def closed_concepts_table(store: ResultsStore, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """-> one row per (method, similarity) the layer has: the neuron's concepts as "concept (score)" joined
    by " · ", or why it has none (ICL: no answer; a similarity: too many concepts tie). Columns: method,
    similarity, concepts."""
    pairs = store.query_df('SELECT DISTINCT method, similarity FROM "closed_concepts" WHERE model = ? AND layer = ? '
                           "ORDER BY method, similarity", [model, layer])
    mine = closed_concepts(store, model, layer, neuron)
    shown = (mine["concept"] + " (" + mine["score"].round(3).astype(str) + ")").groupby(
        [mine["method"], mine["similarity"]]).agg(" · ".join) if len(mine) else pd.Series(dtype=object)
    rows = [(m, s, shown.get((m, s), NO_ANSWER if m == "ICL" else NO_CONCEPT))
            for m, s in pairs.itertuples(index=False)]
    return pd.DataFrame(rows, columns=["method", "similarity", "concepts"])


def open_concepts(store: ResultsStore, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """-> the neuron's open-set concepts (adjectives and nouns of S_h^c) with counts."""
    return store.read("open_concepts", ["word", "pos", "count"], model=model, layer=layer, neuron=int(neuron),
                      order_by=["pos", "word"])
