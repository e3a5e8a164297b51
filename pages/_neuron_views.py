"""The Neuron page's views beyond its explanation (issue 15): activation density, related neurons, the effect on
the output, clips from every activation quantile, and the neuron's download. Widgets only: every value comes
from ``and_engine.explorer``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from and_engine.explorer import distribution, export, related
from pages._shared import download, md, results_path


@st.cache_data(show_spinner=False, max_entries=64, ttl=600)
def _layer_density(db_path: str, db_mtime: float, model: str, layer: str, threshold: float, _db) -> dict:
    return distribution.layer_density(_db, model, layer, threshold)


def density_section(db, model: str, layer: str, values: np.ndarray) -> None:
    """Share of the probing clips the neuron fires on, its dead / always-on flag and the layer's counts."""
    st.subheader("Activation density")
    c1, c2, c3, c4 = st.columns(4)
    threshold = c1.number_input("fires when the activation is above", value=distribution.DENSITY_THRESHOLD,
                                step=0.1, format="%.2f", key="nr_density_t",
                                help="The stored activations are the layer's pooled outputs (before the "
                                     "non-linearity for conv / linear layers).")
    d = distribution.density(values, threshold)
    c2.metric("density", f"{d.share_above:.1%}", help=f"share of the {d.n_clips} probing clips above the threshold")
    c3.metric("flag", "dead" if d.dead else "always on" if d.always_on else "—",
              help="dead: above the threshold on no probing clip; always on: on every one")
    path = results_path()
    counts = _layer_density(str(path), path.stat().st_mtime, model, layer, float(threshold), db)
    c4.metric("in this layer", f"{counts['dead']} dead · {counts['always_on']} always on",
              help=f"of the layer's {counts['n_neurons']} neurons, at this threshold")


def _links(df: pd.DataFrame, model: str, layer: str, neuron: str) -> pd.Series:
    return "neuron?model=" + df[model].astype(str) + "&layer=" + df[layer].astype(str) + "&neuron=" + \
        df[neuron].astype(str)


def related_section(db, model: str, layer: str, neuron: int, n_models: int) -> None:
    """The neuron's most correlated neurons: same layer, other layers, other models, with their explanations."""
    st.subheader("Related neurons (correlation of the activations over the probing set)")
    if not related.has_related(db):
        st.info("This database was built before the related_neurons stage: rebuild it to see related neurons "
                "(only that stage is computed).")
        return
    rel = related.related(db, model, layer, neuron)
    tabs = st.tabs([related.RELATION_TITLES[r] for r in related.RELATIONS])
    for tab, relation in zip(tabs, related.RELATIONS):
        rows = rel[rel["relation"] == relation]
        with tab:
            if rows.empty:
                why = {"other_model": "this database holds one model: dissect another on the same probing set to "
                                      "compare", "other_layer": "this model has one dissected layer"}.get(
                    relation, "no other neuron of this layer varies over the probing set")
                st.info(f"No related neuron here: {why}." if n_models == 1 or relation != "other_model"
                        else "No related neuron in the other models.")
                continue
            shown = rows.assign(link=_links(rows, "other_model", "other_layer", "other_neuron"))
            st.dataframe(shown[["rank", "link", "other_model", "other_layer", "correlation", "top_concept",
                                "calibrated_summary"]], hide_index=True, width="stretch", column_config={
                "link": st.column_config.LinkColumn("neuron", display_text=r"neuron=(\d+)$"),
                "other_model": "model", "other_layer": "layer",
                "correlation": st.column_config.NumberColumn("r", format="%.3f"),
                "top_concept": "DB concept", "calibrated_summary": "S_h^c"})


def quantile_clips(values: np.ndarray, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """The clips shown from every activation quantile (seeded by the neuron, so a revisit shows the same)."""
    seed = int.from_bytes(f"{model}/{layer}/{neuron}".encode()[-8:].rjust(8, b"\0"), "little")
    return distribution.quantile_clips(values, n_bins=5, per_bin=2, seed=seed)


def download_section(model: str, layer: str, neuron: int) -> None:
    """The neuron's export (``python -m and_engine export --layer --neuron``) as a download."""
    st.subheader("Download")
    download("Download this neuron", export.stem(model, layer, neuron),
             lambda db: export.export_tables(db, model, layer, neuron), key="nr_download")
    st.caption(md(f"the same as: python -m and_engine export --model {model} --layer {layer} --neuron {neuron}"))
