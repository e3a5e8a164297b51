"""Export: a neuron, a layer or a whole model of a results database -> named tables -> Parquet / JSON / CSV.

``export_tables(store, model, layer=None, neuron=None)`` -> {table: DataFrame}:

* ``neurons``: per neuron its activation summary over the probing set (``distribution.activation_summary``:
  mean, std, min, max, share above the density threshold, dead / always-on), S_h, S_l and S_h^c;
* ``extremes``: the top-K / bottom-K clips (side, rank from 1, clip id, activation, file, label, caption);
* ``closed_concepts``, ``open_concepts``, ``related_neurons`` and, where the build computed them, ``scores``;
* ``activations``: every clip's activation (one neuron only: a layer's would be the database itself);
* ``provenance``: the steps that wrote these rows (stage, scope, parameters, fingerprint, code version, times)
  and ``run``: the last finished build (its config as JSON).

``write_export`` writes one file per table (Parquet, CSV) or one JSON document; ``export_bytes`` the same as
one download (a zip for Parquet / CSV). ``safe_csv`` is the one CSV writer (spreadsheet-safe text cells).
``python -m and_engine export`` and the app's download buttons call these.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from and_engine.explorer import queries
from and_engine.explorer.distribution import DENSITY_THRESHOLD, activation_summary
from and_engine.store import schema
from and_engine.store.results import ResultsStore

FORMATS = ("parquet", "json", "csv")
MIME = {"json": "application/json", "zip": "application/zip", "csv": "text/csv"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula (OWASP)
SCORES_TABLE = "explanation_scores"


def export_tables(store: ResultsStore, model: str, layer: str | None = None, neuron: int | None = None,
                  threshold: float = DENSITY_THRESHOLD) -> dict[str, pd.DataFrame]:
    """A model (every dissected layer), one layer or one neuron -> {table name: rows}; NotFoundError naming
    what is not in the database."""
    names = queries.layers(store, model)["layer"].tolist()
    if layer is None and neuron is not None:
        raise queries.NotFoundError("a neuron needs its layer")
    if layer is not None and layer not in names:
        raise queries.NotFoundError(f"no dissected layer {layer!r} in model {model!r} (layers: {names})")
    if neuron is not None:
        queries.check_neuron(store, model, layer, int(neuron))
    chosen = [layer] if layer is not None else names
    where = {"model": model, "layer": chosen, **({"neuron": int(neuron)} if neuron is not None else {})}
    out = {"neurons": _neurons(store, model, chosen, neuron, threshold), "extremes": _extremes(store, where)}
    for name, table in (("closed_concepts", "closed_concepts"), ("open_concepts", "open_concepts"),
                        ("related_neurons", "related_neurons"), ("scores", SCORES_TABLE)):
        if table in schema.TABLES and queries.has_table(store, table):  # a database built before the stage lacks it
            out[name] = _drop_step(store.read(table, order_by=["layer", "neuron"], **where))
    if neuron is not None:
        values = queries.activations(store, model, layer, int(neuron))
        clips = queries.clips(store).reset_index()
        out["activations"] = clips[["clip_id", "rel_path", "label"]].assign(activation=values[clips["clip_id"]])
    out["provenance"], out["run"] = _provenance(store, model, chosen)
    return out


def _drop_step(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="step_id", errors="ignore").reset_index(drop=True)


def _neurons(store: ResultsStore, model: str, layers: list[str], neuron: int | None, threshold: float) -> pd.DataFrame:
    parts = []
    for layer in layers:
        acts = store.read_activations(model, layer)
        summary = activation_summary(acts, threshold)
        summary = summary.iloc[[int(neuron)]] if neuron is not None else summary
        parts.append(summary.assign(model=model, layer=layer, density_threshold=threshold, n_clips=len(acts)))
    df = pd.concat(parts, ignore_index=True)
    where = {"model": model, "layer": layers, **({"neuron": int(neuron)} if neuron is not None else {})}
    summ = store.read("summaries", ["layer", "neuron", "side", "summary"], **where)
    wide = summ.pivot_table(index=["layer", "neuron"], columns="side", values="summary", aggfunc="first")
    wide = wide.reindex(columns=list(schema.SIDES)).rename(columns={"top": "summary_top", "bottom": "summary_bottom"})
    cal = store.read("calibrated_summaries", ["layer", "neuron", "calibrated_summary"], **where)
    df = df.merge(wide.reset_index(), on=["layer", "neuron"], how="left").merge(cal, on=["layer", "neuron"], how="left")
    first = ["model", "layer", "neuron"]
    return df[first + [c for c in df.columns if c not in first]]


def _extremes(store: ResultsStore, where: dict) -> pd.DataFrame:
    ext = store.read("extremes", order_by=["layer", "neuron"], **where)
    rows = []
    for side in schema.SIDES:
        ids, vals = ext[f"{side}k_clip_ids"], ext[f"{side}k_values"]
        n = ids.map(len).to_numpy()
        rows.append(pd.DataFrame({
            "model": np.repeat(ext["model"].to_numpy(), n), "layer": np.repeat(ext["layer"].to_numpy(), n),
            "neuron": np.repeat(ext["neuron"].to_numpy(), n), "side": side,
            "rank": np.concatenate([np.arange(schema.FIRST_RANK, schema.FIRST_RANK + k) for k in n]) if len(n) else [],
            "clip_id": np.concatenate([np.asarray(v, dtype=np.int64) for v in ids]) if len(n) else [],
            "activation": np.concatenate([np.asarray(v, dtype=np.float64) for v in vals]) if len(n) else []}))
    out = pd.concat(rows, ignore_index=True)
    return out.join(queries.clips(store)[["rel_path", "label", "caption"]], on="clip_id")


def _provenance(store: ResultsStore, model: str, layers: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (the steps whose scope is global, the model or one of ``layers``; the last finished run)."""
    steps = queries.steps(store)

    def mine(scope: str) -> bool:
        parts = dict(p.partition("=")[::2] for p in scope.split("/") if "=" in p)
        return not parts or (parts.get("model") == model and parts.get("layer", layers[0]) in layers)

    run = queries.last_finished_run(store)
    return (steps[steps["scope"].map(mine)].reset_index(drop=True),
            pd.DataFrame([run] if run else [], columns=["run_id", "config_name", "config_json", "finished_at"]))


def stem(model: str, layer: str | None = None, neuron: int | None = None) -> str:
    """The file name stem of an export: ``model[.layer[.neuron]]``, reduced to safe characters."""
    name = ".".join(str(p) for p in (model, layer, neuron) if p is not None)
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def safe_csv(df: pd.DataFrame) -> bytes:
    """DataFrame -> UTF-8 CSV (RFC 4180 line ends) whose text cells a spreadsheet shows as text: a cell starting
    with ``FORMULA_STARTS`` gets a leading ``'``."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_string_dtype(out[col]) or pd.api.types.is_object_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    return out.to_csv(index=False, lineterminator="\r\n").encode()


def _table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return safe_csv(df)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _json(tables: dict[str, pd.DataFrame]) -> bytes:
    docs = {name: json.loads(df.to_json(orient="records", date_format="iso")) for name, df in tables.items()}
    return json.dumps(docs, indent=1, ensure_ascii=False).encode()


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}, got {fmt!r}")


def download_name(name: str, fmt: str) -> tuple[str, str]:
    """-> (file name, MIME type) of a download of ``fmt``: ``name.json`` or ``name.<fmt>.zip``."""
    _check(fmt)
    return (f"{name}.json", MIME["json"]) if fmt == "json" else (f"{name}.{fmt}.zip", MIME["zip"])


def export_bytes(tables: dict[str, pd.DataFrame], fmt: str, name: str) -> tuple[bytes, str, str]:
    """Tables -> one download: (bytes, file name, MIME type) (``download_name``); a zip holds ``<table>.parquet``
    / ``<table>.csv``."""
    file_name, mime = download_name(name, fmt)
    if fmt == "json":
        return _json(tables), file_name, mime
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for table, df in tables.items():
            zf.writestr(f"{table}.{fmt}", _table_bytes(df, fmt))
    return buf.getvalue(), file_name, mime


def write_export(tables: dict[str, pd.DataFrame], fmt: str, out_dir: Path, name: str) -> list[Path]:
    """Tables -> files in ``out_dir`` (created): ``name.json``, or ``name.<table>.parquet`` / ``.csv`` each."""
    _check(fmt)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        paths = {out_dir / f"{name}.json": _json(tables)}
    else:
        paths = {out_dir / f"{name}.{table}.{fmt}": _table_bytes(df, fmt) for table, df in tables.items()}
    for path, data in paths.items():
        path.write_bytes(data)
    return list(paths)
